#!/usr/bin/env python3
"""Regenerates the committed seed corpora under fuzz/corpus/<target>/ (a few valid inputs
per target). Run from anywhere: python3 fuzz/gen-seeds.py

Inputs that fuzzing found failing are committed as found (ws_frame/inflate_cap_overshoot,
middleware_decode/float_roundtrip); this script writes other names only and leaves them be."""

import json
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- socks5_handshake: greeting [+ RFC 1929 auth] + request (+ pipelined bytes) ---------------
put("socks5_handshake", "noauth_ipv4", bytes([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0x1F, 0x90]))
put("socks5_handshake", "noauth_domain",
    bytes([5, 1, 0, 5, 1, 0, 3, 11]) + b"example.com" + bytes([1, 0xBB]) + b"GET / HTTP/1.1\r\n")
put("socks5_handshake", "noauth_ipv6", bytes([5, 1, 0, 5, 1, 0, 4]) + bytes(15) + b"\x01\x00\x50")
put("socks5_handshake", "userpass_domain",
    bytes([5, 2, 0, 2, 1, 8]) + b"opencode" + bytes([5]) + b"proxy"
    + bytes([5, 1, 0, 3, 7]) + b"a.b.com" + bytes([0, 80]))
put("socks5_handshake", "bind_command", bytes([5, 1, 0, 5, 2, 0, 1, 10, 0, 0, 1, 0, 80]))
put("socks5_handshake", "no_method", bytes([5, 2, 1, 3]))

# --- http_head: first byte = read chunk knob, then the head -----------------------------------
put("http_head", "connect", b"\x00CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
put("http_head", "connect_v6_auth",
    b"\x03CONNECT [::1]:8443 HTTP/1.1\r\nProxy-Authorization: Basic b3BlbmNvZGU6cHJveHk=\r\n\r\n")
put("http_head", "absolute_get",
    b"\x10GET http://u:p@Example.com:8080/x?y#z HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\nbody")
put("http_head", "origin_form", b"\x01GET / HTTP/1.1\r\nHost: x\r\n\r\n")
put("http_head", "partial", b"\x00POST http://a/ HTTP/1.1\r\nContent-Length: 3\r\n")


# --- WebSocket frames ----------------------------------------------------------------------------
def frame(fin, rsv, opcode, payload, mask=None):
    b0 = (0x80 if fin else 0) | rsv | opcode
    mbit = 0x80 if mask else 0
    n = len(payload)
    if n <= 125:
        head = bytes([b0, mbit | n])
    elif n <= 0xFFFF:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        head += bytes(mask)
    return head + payload


def deflate_messages(msgs):
    """permessage-deflate with context takeover: one raw-deflate stream, SYNC_FLUSH per message,
    the 00 00 FF FF tail stripped."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = []
    for m in msgs:
        data = c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        out.append(data[:-4])
    return out


MASK = [0x37, 0xFA, 0x21, 0x3D]
RSV1 = 0x40
plain_s2c = (frame(True, 0, 1, b'{"type":"hello"}') + frame(False, 0, 2, b"\x00\x01")
             + frame(False, 0, 0, b"\x02") + frame(True, 0, 9, b"ping")
             + frame(True, 0, 0, b"\x03") + frame(True, 0, 8, b"\x03\xe8bye"))
plain_c2s = (frame(True, 0, 1, b"Hello", MASK) + frame(True, 0, 10, b"", MASK)
             + frame(True, 0, 2, bytes(range(200)), MASK))
msgs = [b'{"event":"token","text":"hello world"}' * 3, b'{"event":"token","text":"hello again"}' * 3]
comp = deflate_messages(msgs)
deflate_s2c = b"".join(frame(True, RSV1, 1, m) for m in comp)
deflate_c2s = frame(False, RSV1, 1, comp[0][:10], MASK) + frame(True, 0, 0, comp[0][10:], MASK) \
    + frame(True, RSV1, 1, comp[1], MASK)

# ws_tap: byte 0 = flags (bit0 deflate, bit1 client_no_context_takeover, bit2
# server_no_context_takeover, bit3 client-to-server, bits 5-7 chunk size), byte 1 = limits.
put("ws_tap", "plain_s2c", bytes([0b111 << 5, 0x0F]) + plain_s2c)
put("ws_tap", "plain_c2s_chunked", bytes([0x08 | (2 << 5), 0x0E]) + plain_c2s)
put("ws_tap", "deflate_s2c", bytes([0x01 | (7 << 5), 0x0F]) + deflate_s2c)
put("ws_tap", "deflate_c2s_bytewise", bytes([0x09, 0x0A]) + deflate_c2s)
put("ws_tap", "deflate_nct", bytes([0x07 | (4 << 5), 0x0F]) + b"".join(
    frame(True, RSV1, 2, deflate_messages([m])[0]) for m in msgs))

# ws_frame: byte 0 = flags (bits 0-1 cap, bits 2-3 chunk, RSV bits allowed as in the frame
# header, bit 7 no_context_takeover for the raw inflater pass).
put("ws_frame", "plain", bytes([0x03 | (3 << 2)]) + plain_s2c)
put("ws_frame", "masked_bytewise", bytes([0x02]) + plain_c2s)
put("ws_frame", "rsv1", bytes([RSV1 | 0x03 | (2 << 2)]) + deflate_s2c)
put("ws_frame", "raw_deflate", bytes([0x80]) + comp[0])
big = frame(True, 0, 2, bytes(300)) + frame(True, 0, 2, b"x" * 70000)
put("ws_frame", "extended_lengths", bytes([0x01 | (3 << 2)]) + big[:2000])
# Regression seed: 32 KiB of history in a BFINAL block, then empty BFINAL blocks (`03 00`), each
# of which once replayed the whole window uncounted (see docs/fuzzing.md).
history = zlib.compressobj(9, zlib.DEFLATED, -15)
history = history.compress(bytes(32768)) + history.flush(zlib.Z_FINISH)
put("ws_frame", "bfinal_restarts", bytes([0x03 << 2]) + history + b"\x03\x00" * 2000)
put("ws_frame", "extensions_text",
    b"\x00permessage-deflate; client_no_context_takeover; server_max_window_bits=\"10\"\nx, permessage-deflate")

# --- control_command -----------------------------------------------------------------------------
for name, text in {
    "allow": '{"command":"allow","pending_id":123,"scope":"exact","duration":"permanent","notes":"n","request_id":"r1"}',
    "deny": '{"command":"deny","pending_id":7,"request_id":42}',
    "list_rules": '{"command":"list_rules"}',
    "create_rule": '{"command":"create_rule","container_pattern":"*","destination_pattern":"*.example.com","port_pattern":"443","action":"allow"}',
    "subscribe": '{"command":"subscribe","event_types":["pending_created"]}',
    "update_rule": '{"command":"update_rule","rule_id":5,"notes":null,"expires_at":"","action":"deny"}',
    "unknown": '{"command":"nope","request_id":null}',
}.items():
    put("control_command", name, text)

# --- middleware_decode ---------------------------------------------------------------------------
for name, text in {
    "decision_allow": '{"type":"decision","id":"1","action":"allow"}',
    "decision_deny": '{"Type":"decision","ID":"2","Action":"deny","status_code":403,"body":"bm8=","tags":{"k":1}}',
    "decision_rewrite": '{"type":"decision","id":"3","action":"rewrite","headers":{"X-A":["1","2"],"X-B":null},"body":"aGVs\\r\\nbG8="}',
    "hello": '{"type":"hello","name":"scanner","min_version":1,"max_version":2,"hooks":[{"type":"http-request","filters":{"host":["*.openai.com"],"tls":true}},{"Type":"http-response","Filters":null}],"max_body_bytes":1048576}',
    "hello_legacy": '{"type":"hello","hooks":[{"type":"http-request"}]}',
}.items():
    put("middleware_decode", name, text)

# --- middleware_glob: pattern NUL value ------------------------------------------------------------
for name, (p, v) in {
    "suffix": ("*.openai.com", "api.openai.com"),
    "classes": ("a[^b-d]?[\\]x]*", "aé/]zzz"),
    "path": ("a*b*c*d*e*/f", "axbxcxdxexxx/f"),
    "backtrack": ("*a*a*a*a*a*a*a*b", "a" * 200),
    "malformed": ("[a-", "a"),
}.items():
    put("middleware_glob", name, p + "\0" + v)

# --- middleware_split ----------------------------------------------------------------------------
for name, text in {
    "plain": "python3 mw.py --flag",
    "quotes": "uv run --with 'websockets>=12' \"my mw.py\" a\\ b",
    "sh": "sh -c \"echo hi | cat\"",
    "unterminated": "a 'b c",
}.items():
    put("middleware_split", name, text)

# --- dissect_*: flags byte, request body, NUL, response body (greyproxyd dissect::fuzzing) ----
# Flags: bits 0-1 content type (0 event-stream, 1 JSON, 2 none, 3 event-stream+charset), bit 2
# response cut, bit 3 request cut, bit 4 User-Agent, bit 5 the other URL (OpenRouter / alt=sse).

def sse(events, named=True):
    out = ""
    for e in events:
        if named:
            out += "event: %s\n" % e["type"]
        out += "data: %s\n\n" % json.dumps(e)
    return out


def dissect_seed(target, name, flags, request, response):
    if not isinstance(request, str):
        request = json.dumps(request)
    put(target, name, bytes([flags]) + request.encode() + b"\0" + response.encode())


anthropic_request = {
    "model": "claude-opus-4-6", "stream": True, "max_tokens": 32000,
    "metadata": {"user_id": "user_ab_account_5a3241c6-4cbe-47e2-a7d3-981f6bf69be8_session_33a9d683-ef38-4571-92b9-1ae2bf7a6be3"},
    "system": [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."}],
    "tools": [{"name": "Agent"}, {"name": "Bash"}],
    "messages": [
        {"role": "user", "content": "explore"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "Let me look."},
                                          {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a b"}]}]},
    ],
}
anthropic_stream = sse([
    {"type": "message_start", "message": {"id": "msg_1", "model": "claude-opus-4-6", "usage": {
        "input_tokens": 3, "cache_creation_input_tokens": 5333, "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 5333, "ephemeral_1h_input_tokens": 0}, "output_tokens": 14}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Two agents."}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "Agent", "input": {}}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"description\": \"Expl"}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "ore\", \"prompt\": \"look around\"}"}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 148}},
    {"type": "message_stop"},
])
dissect_seed("dissect_anthropic", "stream_tool_use", 0x10, anthropic_request, anthropic_stream)
dissect_seed("dissect_anthropic", "stream_cut", 0x04, anthropic_request, anthropic_stream[:700])
dissect_seed("dissect_anthropic", "json_message", 0x01, {"model": "claude-haiku-4-5", "system": "Title this.", "messages": [{"role": "user", "content": "hi"}]},
             json.dumps({"id": "msg_2", "model": "claude-haiku-4-5", "content": [{"type": "text", "text": "Greeting"}],
                         "stop_reason": "end_turn", "usage": {"input_tokens": 20, "output_tokens": 3}}))
dissect_seed("dissect_anthropic", "error_event", 0x00, {"metadata": {"user_id": "{\"device_id\":\"d\",\"session_id\":\"s1\"}"}},
             sse([{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]))

chat_request = {
    "model": "openai/gpt-5.4", "stream": True, "prompt_cache_key": "ses_2af2ef724ffeUHjFHEhGOFhyXe",
    "tools": [{"type": "function", "function": {"name": "bash"}}, {"type": "function", "function": {"name": "task"}}],
    "messages": [
        {"role": "system", "content": "You are opencode."},
        {"role": "user", "content": [{"type": "text", "text": "fix it"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": "{\"command\":\"make\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
    ],
}
chat_stream = ": OPENROUTER PROCESSING\n\n" + sse([
    {"id": "gen-1", "model": "openai/gpt-5.4", "choices": [{"index": 0, "delta": {"reasoning": "think", "role": "assistant"}}]},
    {"id": "gen-1", "choices": [{"index": 0, "delta": {"content": "Running"}}]},
    {"id": "gen-1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_2", "function": {"name": "bash", "arguments": "{\"comm"}}]}}]},
    {"id": "gen-1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "and\":\"make test\"}"}}]}, "finish_reason": "tool_calls"}]},
    {"id": "gen-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
     "usage": {"prompt_tokens": 9659, "completion_tokens": 15, "cost": 0.0243725,
               "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 5},
               "completion_tokens_details": {"reasoning_tokens": 3}}},
], named=False) + "data: [DONE]\n\n"
dissect_seed("dissect_chat", "openrouter_stream", 0x30, chat_request, chat_stream)
dissect_seed("dissect_chat", "stream_cut", 0x00, chat_request, chat_stream[:400])
dissect_seed("dissect_chat", "json_padded", 0x11, {"model": "anthropic/claude-sonnet-4", "messages": [{"role": "system", "content": "Act as an expert software developer."}]},
             "\n   \n" + json.dumps({"id": "gen-2", "model": "m", "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "Hello world!"}}],
                                    "usage": {"prompt_tokens": 2619, "completion_tokens": 6, "cost": 0.007947}}))
dissect_seed("dissect_chat", "error_body", 0x01, "{", json.dumps({"error": {"message": "Rate limit", "code": 429}}))

gemini_request = {
    "systemInstruction": {"role": "user", "parts": [{"text": "You are Gemini CLI."}]},
    "tools": [{"functionDeclarations": [{"name": "read_file"}, {"name": "run_shell_command"}]}],
    "contents": [
        {"role": "user", "parts": [{"text": "hello"}]},
        {"role": "model", "parts": [{"text": "plan", "thought": True}, {"functionCall": {"name": "read_file", "args": {"file_path": "a/b.rs"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "read_file", "response": {"output": "fn main() {}"}}}]},
    ],
}
usage = {"promptTokenCount": 11934, "candidatesTokenCount": 10, "totalTokenCount": 12055, "thoughtsTokenCount": 111, "cachedContentTokenCount": 5}
gemini_stream = "".join("data: %s\r\n\r\n" % json.dumps(c) for c in [
    {"candidates": [{"content": {"parts": [{"text": "Hello!"}], "role": "model"}, "index": 0}], "usageMetadata": usage,
     "modelVersion": "gemini-3-flash-preview", "responseId": "r1"},
    {"candidates": [{"content": {"parts": [{"functionCall": {"name": "run_shell_command", "args": {"command": "ls"}}}], "role": "model"},
                     "finishReason": "STOP", "index": 0}], "usageMetadata": dict(usage, candidatesTokenCount=58)},
])
dissect_seed("dissect_gemini", "sse_stream", 0x30, gemini_request, gemini_stream)
dissect_seed("dissect_gemini", "sse_cut", 0x20, gemini_request, gemini_stream[:300])
dissect_seed("dissect_gemini", "json_array", 0x11, gemini_request,
             json.dumps([{"candidates": [{"content": {"parts": [{"text": "{\"complexity_score\": 1}"}]}, "finishReason": "STOP"}],
                          "usageMetadata": {"promptTokenCount": 770, "candidatesTokenCount": 34, "thoughtsTokenCount": 103}}]))
dissect_seed("dissect_gemini", "error_body", 0x21, gemini_request,
             json.dumps({"error": {"code": 400, "message": "API key not valid", "status": "INVALID_ARGUMENT"}}))

# --- dissect_responses: flags, request body NUL response body ---------------------------------
def sse(*events):
    return "".join("event: %s\ndata: %s\n\n" % (json.loads(e)["type"], e) for e in events)


RESP_REQ = ('{"model":"gpt-5.1","stream":true,"prompt_cache_key":"ses_1","instructions":"Be brief.",'
            '"tools":[{"type":"function","name":"bash"},{"type":"web_search"}],"input":['
            '{"role":"developer","content":"dev"},{"role":"user","content":[{"type":"input_text","text":"hi"}]},'
            '{"type":"reasoning","summary":[{"type":"summary_text","text":"t"}]},'
            '{"type":"function_call","call_id":"c1","name":"bash","arguments":"{\\"command\\":\\"ls\\"}"},'
            '{"type":"function_call_output","call_id":"c1","output":"task_id: ses_2 done"}]}')
RESP_SSE = sse(
    '{"type":"response.created","response":{"id":"r1","model":"gpt-5.1","status":"in_progress"}}',
    '{"type":"response.reasoning_summary_text.delta","item_id":"rs","summary_index":0,"delta":"plan"}',
    '{"type":"response.output_text.delta","item_id":"m","delta":"Hi"}',
    '{"type":"response.output_item.added","output_index":2,"item":{"type":"function_call","id":"fc1","call_id":"c2","name":"read"}}',
    '{"type":"response.output_item.added","output_index":3,"item":{"type":"function_call","id":"fc2","call_id":"c3","name":"read"}}',
    '{"type":"response.function_call_arguments.delta","item_id":"fc2","delta":"{\\"file_path\\":"}',
    '{"type":"response.function_call_arguments.delta","item_id":"fc1","delta":"{\\"file_path\\":\\"a\\"}"}',
    '{"type":"response.function_call_arguments.done","item_id":"fc2","arguments":"{\\"file_path\\":\\"b\\"}"}',
    '{"type":"response.completed","response":{"id":"r1","model":"gpt-5.1","status":"completed","output":[],'
    '"usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":4},"output_tokens":5,'
    '"output_tokens_details":{"reasoning_tokens":2}}}}',
)
RESP_JSON = ('{"id":"r2","object":"response","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},'
             '"output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Hel"}]},'
             '{"type":"custom_tool_call","call_id":"c4","name":"apply_patch","input":"*** Begin Patch"}],'
             '"usage":{"input_tokens":3,"output_tokens":1}}')
put("dissect_responses", "sse", b"\x01" + RESP_REQ.encode() + b"\0" + RESP_SSE.encode())
put("dissect_responses", "json", b"\x00" + RESP_REQ.encode() + b"\0" + RESP_JSON.encode())
put("dissect_responses", "error_cut", b"\x07" + RESP_REQ[:40].encode() + b"\0"
    + sse('{"type":"error","code":"rate_limit_exceeded","message":"slow"}').encode()[:-10])

# --- dissect_responses_ws: one message per line, ">" = client -------------------------------------
WS_CREATE = ('{"type":"response.create","model":"gpt-5.1-codex","generate":%s,"client_metadata":'
             '{"session_id":"s","thread_id":"t","x-codex-turn-metadata":"{}"},"input":[{"type":"additional_tools",'
             '"tools":[{"type":"namespace","name":"mcp","tools":[{"type":"function","name":"x"}]}]},'
             '{"type":"message","role":"user","content":[{"type":"input_text","text":"go"}]}]}')
ws_lines = [">" + WS_CREATE % "false",
            '{"type":"response.created","response":{"id":"w0","status":"in_progress"}}',
            '{"type":"response.completed","response":{"id":"w0","status":"completed","output":[]}}',
            ">" + WS_CREATE % "true"] + [line[len("data: "):] for line in RESP_SSE.split("\n")
                                        if line.startswith("data: ")]
put("dissect_responses_ws", "codex_turn", "\n".join(ws_lines))
put("dissect_responses_ws", "superseded_close", "\n".join([
    ">" + WS_CREATE % "true", '{"type":"response.output_text.delta","delta":"a"}', "not json",
    ">" + WS_CREATE % "true", '{"type":"error","status":429,"error":{"type":"usage_limit_reached","message":"m"}}',
    '{"type":"response.output_text.delta","delta":"orphan"}']))
