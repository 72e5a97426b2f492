//! TLS interception: the CA ([`ca`]), leaf certificates issued per server name and cached
//! ([`leaf`]), reloading the CA when its files change ([`reload`]), and the `greyproxyd cert`
//! commands ([`cli`]).

pub mod ca;
pub mod cli;
pub mod intercept;
pub mod leaf;
pub mod reload;
pub mod upstream;
