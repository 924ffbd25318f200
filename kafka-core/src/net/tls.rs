//! TLS over the broker connection (rustls). Plaintext only for now.

use std::io;

use tokio::net::TcpStream;

use crate::net::config::ConnectionConfig;
use crate::net::connection::BoxStream;
use crate::net::error::NetError;

/// Wraps the TCP stream in TLS when the configuration asks for it.
pub(crate) async fn wrap(
    tcp: TcpStream,
    _host: &str,
    _broker: &str,
    _config: &ConnectionConfig,
) -> Result<(BoxStream, bool), NetError> {
    Ok((Box::new(tcp), false))
}

/// Maps an I/O error of the (possibly TLS) stream.
pub(crate) fn map_stream_error(broker: &str, source: io::Error) -> NetError {
    NetError::Io {
        broker: broker.to_owned(),
        source,
    }
}
