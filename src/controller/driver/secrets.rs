//! Reading one key of a Secret named by a spec (an account key, a connection string). The controller may
//! `get` Secrets, never list or watch them, so it reads only the ones it is told of. A missing Secret or
//! key is waited for (the user may create it next); a value that is not text is a spec error.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use super::error::Error;
use crate::api::common::SecretKeyRef;

/// The text at `key_ref` in `namespace`. `object` and `field` (e.g. `spec.azure.accountKeySecretRef`)
/// are named in the errors.
pub async fn read_key(
    client: &Client,
    namespace: &str,
    object: &str,
    field: &str,
    key_ref: &SecretKeyRef,
) -> Result<String, Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(&key_ref.name)
        .await
        .map_err(|source| Error::kube(object, format!("reading Secret {}", key_ref.name), source))?;
    let missing = |what: String| Error::DependencyNotReady {
        object: object.to_owned(),
        message: format!("{field}: {what}"),
    };
    let secret = secret.ok_or_else(|| missing(format!("Secret {} does not exist", key_ref.name)))?;
    let value = secret
        .data
        .as_ref()
        .and_then(|data| data.get(&key_ref.key))
        .ok_or_else(|| missing(format!("Secret {} has no key {}", key_ref.name, key_ref.key)))?;
    String::from_utf8(value.0.clone()).map_err(|_| Error::InvalidSpec {
        object: object.to_owned(),
        message: format!(
            "{field}: key {} of Secret {} is not text",
            key_ref.key, key_ref.name
        ),
    })
}
