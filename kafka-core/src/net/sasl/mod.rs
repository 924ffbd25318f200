//! SASL authentication (KIP-152, KIP-368). Not wired yet.

use crate::net::connection::Connection;
use crate::net::error::NetError;

/// Authenticates a new connection when SASL is configured.
pub(crate) async fn authenticate_new(_conn: &Connection) -> Result<(), NetError> {
    Ok(())
}
