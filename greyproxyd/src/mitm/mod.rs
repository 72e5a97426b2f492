//! TLS interception: the CA ([`ca`]), leaf certificates issued per server name and cached
//! ([`leaf`]), reloading the CA when its files change ([`reload`]), and the `greyproxyd cert`
//! commands ([`cli`]).

pub mod ca;
pub mod cli;
pub(crate) mod intercept;
pub(crate) mod leaf;
pub(crate) mod reload;
pub(crate) mod upstream;
