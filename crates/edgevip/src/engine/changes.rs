//! A watch channel's changes as a future that stays armed across turns of an event loop.
//! `watch::Receiver::changed()` registers a waiter each time it is created and unregisters
//! it when dropped; in a `select!` that turns on every advert, that churn was a tenth of a
//! backup's CPU. This keeps one registration until a change arrives.

use tokio::sync::watch;
use tokio_util::sync::ReusableBoxFuture;

type Armed<T> = (watch::Receiver<T>, bool);

pub struct Changes<T> {
    fut: ReusableBoxFuture<'static, Armed<T>>,
    open: bool,
}

async fn changed<T: Send + Sync>(mut rx: watch::Receiver<T>) -> Armed<T> {
    let open = rx.changed().await.is_ok();
    (rx, open)
}

impl<T: Clone + Send + Sync + 'static> Changes<T> {
    /// Changes after the value `rx` holds now.
    pub fn new(mut rx: watch::Receiver<T>) -> Self {
        rx.mark_unchanged();
        Changes {
            fut: ReusableBoxFuture::new(changed(rx)),
            open: true,
        }
    }

    /// The next value; pending for ever once the sender is gone.
    pub async fn next(&mut self) -> T {
        if !self.open {
            return std::future::pending().await;
        }
        let (mut rx, open) = (&mut self.fut).await;
        if !open {
            self.open = false;
            return std::future::pending().await;
        }
        let v = rx.borrow_and_update().clone();
        self.fut.set(changed(rx));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn yields_each_latest_value_then_waits() {
        let (tx, rx) = watch::channel(1);
        let mut c = Changes::new(rx);
        tx.send_replace(2);
        tx.send_replace(3);
        assert_eq!(c.next().await, 3, "the latest value, once");
        let again = tokio::time::timeout(std::time::Duration::from_millis(20), c.next()).await;
        assert!(again.is_err(), "no change, no value");
        tx.send_replace(4);
        assert_eq!(c.next().await, 4);
        drop(tx);
        let closed = tokio::time::timeout(std::time::Duration::from_millis(20), c.next()).await;
        assert!(closed.is_err(), "a closed channel never spins");
    }
}
