//! Whether the user's container is ready: its readiness URL asked every second. While it does not answer
//! 2xx the worker's `/readyz` fails naming why (so the pod is not ready before the container is), and no
//! delivery starts (a delivery waits for readiness, for at most its timeout, instead of spending one of
//! the message's attempts on a container that is restarting).

use std::{future::Future, time::Duration};

use tokio::sync::watch;

use crate::worker::health::Health;

/// How often the readiness URL is asked, and how long one answer may take.
const EVERY: Duration = Duration::from_secs(1);
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// The container's readiness as last seen: `None` while ready, else why not. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Readiness {
    state: watch::Receiver<Option<String>>,
}

impl Readiness {
    /// Always ready (no readiness URL).
    pub fn always() -> Self {
        let (_, state) = watch::channel(None);
        Self { state }
    }

    /// Waits until the container is ready, for at most `bound`; else why it is not.
    pub async fn wait(&self, bound: Duration) -> Result<(), String> {
        if self.state.borrow().is_none() {
            return Ok(());
        }
        let mut state = self.state.clone();
        match tokio::time::timeout(bound, state.wait_for(Option::is_none)).await {
            Ok(Ok(_)) => Ok(()),
            // The watcher stopped (shutting down): the last word stands.
            Ok(Err(_)) | Err(_) => Err(self
                .state
                .borrow()
                .clone()
                .unwrap_or_else(|| "the container is not ready".to_owned())),
        }
    }
}

/// Asks `url` every second until `shutdown`, keeping the returned [`Readiness`] and `health` (what
/// `/readyz` reports) current. Not ready until the first 2xx answer.
pub fn watch(
    url: reqwest::Url,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(Readiness, tokio::task::JoinHandle<()>), reqwest::Error> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(ANSWER_WITHIN)
        .build()?;
    let first = format!("the container has not answered {url} yet");
    health.dependency(Some(first.clone()));
    let (sender, state) = watch::channel(Some(first));
    let task = tokio::spawn(async move {
        tokio::pin!(shutdown);
        loop {
            let verdict = match client.get(url.clone()).send().await {
                Ok(response) if response.status().is_success() => None,
                Ok(response) => Some(format!(
                    "the container answers {url} with HTTP {}",
                    response.status().as_u16()
                )),
                Err(error) => Some(format!("the container does not answer {url}: {error}")),
            };
            if *sender.borrow() != verdict {
                match &verdict {
                    None => tracing::info!(%url, "the container is ready"),
                    Some(reason) => tracing::warn!(%reason, "the container is not ready"),
                }
                health.dependency(verdict.clone());
                sender.send_replace(verdict);
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(EVERY) => {}
            }
        }
    });
    Ok((Readiness { state }, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_readiness_url_it_is_always_ready() {
        assert_eq!(Readiness::always().wait(Duration::ZERO).await, Ok(()));
    }

    #[tokio::test]
    async fn an_unready_container_is_waited_for_then_named() {
        let (sender, state) = watch::channel(Some("the container answers 503".to_owned()));
        let readiness = Readiness { state };
        let error = readiness.wait(Duration::from_millis(10)).await.unwrap_err();
        assert_eq!(error, "the container answers 503");
        let waiting = tokio::spawn({
            let readiness = readiness.clone();
            async move { readiness.wait(Duration::from_secs(5)).await }
        });
        sender.send_replace(None);
        assert_eq!(waiting.await.unwrap(), Ok(()));
    }
}
