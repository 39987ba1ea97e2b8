//! A pooled connection lent to one call, cancelled and closed if the call
//! ends without an answer.

use std::time::Duration;

use deadpool_postgres::Object;
use tokio_postgres::CancelToken;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::task::TaskTracker;

/// How long an abandoned call's cancel request may take.
pub(super) const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// A pooled connection lent to one call. Released (back to the pool)
/// when the call got an answer from the server; dropped while armed (the
/// call's deadline passed, its future was dropped mid-query, or a
/// COMMIT's outcome is unknown) it cancels whatever the connection is
/// running and closes it, so no later call inherits a busy or
/// half-finished connection.
pub(super) struct Lease {
    pub(super) client: Option<Object>,
    pub(super) cancel: CancelToken,
    pub(super) tls: MakeRustlsConnect,
    /// The store's cancels in flight, which shutdown waits for.
    pub(super) cancels: TaskTracker,
}

impl Lease {
    pub(super) fn client(&mut self) -> &mut Object {
        self.client
            .as_mut()
            .expect("a lease holds its client until dropped")
    }

    pub(super) fn release(mut self) {
        self.client.take();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(object) = self.client.take() else {
            return;
        };
        let client = Object::take(object); // out of the pool for good
        let cancel = self.cancel.clone();
        let tls = self.tls.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.cancels.spawn_on(
                async move {
                    let _ = tokio::time::timeout(CANCEL_WAIT, cancel.cancel_query(tls)).await;
                    drop(client);
                },
                &runtime,
            );
        }
    }
}
