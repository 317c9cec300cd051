//! Databricks authentication as the SDKs do it: a personal access token (`DATABRICKS_TOKEN`), or OAuth
//! machine-to-machine for a service principal (`DATABRICKS_CLIENT_ID` / `DATABRICKS_CLIENT_SECRET`: a token from
//! `<host>/oidc/v1/token`, client credentials grant, scope `all-apis`, refreshed before it expires).

use std::time::{Duration, Instant};

use serde_json::Value;
use url::Url;

use super::DatabricksError;

/// Credentials for a workspace.
pub enum Auth {
    /// A personal access token.
    Pat(String),
    /// A service principal's OAuth client id and secret.
    OAuth(OAuthM2M),
}

/// OAuth M2M: the secret, and the current token with when to refresh it.
pub struct OAuthM2M {
    client_id: String,
    client_secret: String,
    current: tokio::sync::Mutex<Option<Token>>,
}

impl OAuthM2M {
    /// The client id and secret.
    pub(crate) fn client(&self) -> (&str, &str) {
        (&self.client_id, &self.client_secret)
    }
}

struct Token {
    header: String,
    refresh_at: Instant,
}

/// Refresh a token this long before it expires (the Python SDK starts refreshing 5 minutes ahead), or halfway
/// through its life if it lives shorter than twice that.
const REFRESH_AHEAD: Duration = Duration::from_secs(300);

impl Auth {
    /// From the environment. `DATABRICKS_AUTH_TYPE` (`pat` or `oauth-m2m`) decides when set; otherwise a PAT wins
    /// over a service principal: a Databricks App gets its own service principal injected beside the
    /// `databricks-token` secret its manifest maps to `DATABRICKS_TOKEN`, and the token is the identity the user
    /// chose (the Python app this replaces behaved the same, so existing deployments keep their identity).
    pub(crate) fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Auth, DatabricksError> {
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let pat = || {
            get("DATABRICKS_TOKEN")
                .map(Auth::Pat)
                .ok_or_else(|| DatabricksError::Config("DATABRICKS_AUTH_TYPE=pat needs DATABRICKS_TOKEN".into()))
        };
        let oauth = || match (get("DATABRICKS_CLIENT_ID"), get("DATABRICKS_CLIENT_SECRET")) {
            (Some(id), Some(secret)) => Ok(Auth::oauth(id, secret)),
            _ => {
                Err(DatabricksError::Config("OAuth M2M needs DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET".into()))
            }
        };
        match get("DATABRICKS_AUTH_TYPE").as_deref() {
            Some("pat") => pat(),
            Some("oauth-m2m") => oauth(),
            Some(other) => Err(DatabricksError::Config(format!(
                "DATABRICKS_AUTH_TYPE {other:?} is not supported: use pat or oauth-m2m"
            ))),
            None => pat().or_else(|_| oauth()).map_err(|_| {
                DatabricksError::Config(
                    "DATABRICKS_HOST is set but no credentials: set DATABRICKS_TOKEN, or DATABRICKS_CLIENT_ID and \
                     DATABRICKS_CLIENT_SECRET"
                        .into(),
                )
            }),
        }
    }

    pub fn oauth(client_id: String, client_secret: String) -> Auth {
        Auth::OAuth(OAuthM2M { client_id, client_secret, current: tokio::sync::Mutex::new(None) })
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Auth::Pat(_) => "personal access token",
            Auth::OAuth(_) => "OAuth M2M (service principal)",
        }
    }

    pub(super) fn refreshable(&self) -> bool {
        matches!(self, Auth::OAuth(_))
    }

    /// Forget the current token: the next call fetches a new one.
    pub(super) async fn invalidate(&self) {
        if let Auth::OAuth(o) = self {
            *o.current.lock().await = None;
        }
    }

    /// The `Authorization` header value, fetching or refreshing an OAuth token when due.
    pub(super) async fn header(&self, http: &reqwest::Client, host: &Url) -> Result<String, DatabricksError> {
        match self {
            Auth::Pat(token) => Ok(format!("Bearer {token}")),
            Auth::OAuth(o) => {
                let mut current = o.current.lock().await;
                if let Some(token) = current.as_ref().filter(|t| Instant::now() < t.refresh_at) {
                    return Ok(token.header.clone());
                }
                let token = o.fetch(http, host).await?;
                let header = token.header.clone();
                *current = Some(token);
                Ok(header)
            }
        }
    }
}

impl OAuthM2M {
    async fn fetch(&self, http: &reqwest::Client, host: &Url) -> Result<Token, DatabricksError> {
        let mut url = host.clone();
        url.set_path("/oidc/v1/token");
        let err = |reason: String| DatabricksError::Token { url: url.to_string(), reason };
        let response = http
            .post(url.clone())
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&scope=all-apis")
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| err(e.to_string()))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let detail = body
                .get("error_description")
                .or_else(|| body.get("error"))
                .and_then(Value::as_str)
                .unwrap_or(text.as_str());
            return Err(err(format!("HTTP {status}: {detail}")));
        }
        let access = body.get("access_token").and_then(Value::as_str).ok_or_else(|| err("no access_token".into()))?;
        let kind = body.get("token_type").and_then(Value::as_str).unwrap_or("Bearer");
        let lifetime = Duration::from_secs(body.get("expires_in").and_then(Value::as_u64).unwrap_or(3600));
        let ahead = REFRESH_AHEAD.min(lifetime / 2);
        Ok(Token { header: format!("{kind} {access}"), refresh_at: Instant::now() + lifetime - ahead })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Auth, DatabricksError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Auth::from_env(|k| vars.get(k).cloned())
    }

    #[test]
    fn a_pat_wins_unless_the_auth_type_says_otherwise() {
        let both = [("DATABRICKS_TOKEN", "dapi1"), ("DATABRICKS_CLIENT_ID", "id"), ("DATABRICKS_CLIENT_SECRET", "s")];
        assert_eq!(from(&both).unwrap().kind(), "personal access token");
        let mut typed = both.to_vec();
        typed.push(("DATABRICKS_AUTH_TYPE", "oauth-m2m"));
        assert_eq!(from(&typed).unwrap().kind(), "OAuth M2M (service principal)");
        assert_eq!(from(&both[1..]).unwrap().kind(), "OAuth M2M (service principal)");
        assert!(from(&[("DATABRICKS_CLIENT_ID", "id")]).is_err());
        assert!(from(&[("DATABRICKS_AUTH_TYPE", "azure-cli"), ("DATABRICKS_TOKEN", "x")]).is_err());
    }
}
