//! The webhook's serving certificate: reloaded when its files change ([`crate::tls::keep_current`]).

use std::time::Duration;

/// How often the certificate files are compared with what is served.
pub const DEFAULT_RELOAD_PERIOD: Duration = Duration::from_secs(10);
