//! Answering registry challenges: Basic credentials, Bearer tokens for
//! scopes (anonymous, with Basic credentials, or with an identity token),
//! and verifying a login.

use crate::challenge::Challenge;
use crate::client::{authority, basic, describe, encode_query, Client, HostState};
use crate::error::RegistryError;
use crate::text::sanitize;
use barge_auth::Credential;
use barge_oci::Reference;
use std::time::{Duration, Instant};

/// The most a token server's reply may hold (tokens, refresh tokens, metadata).
const MAX_TOKEN_REPLY_BYTES: u64 = 1024 * 1024;

/// The longest token barge sends: registries' own header limits are
/// 8–64 KiB, and real tokens are a few KiB.
const MAX_TOKEN_BYTES: u64 = 64 * 1024;

/// A token scope: `repository:<name>:<actions>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(String);

impl Scope {
    pub fn pull(r: &Reference) -> Scope {
        Scope(format!("repository:{}:pull", r.repository()))
    }

    pub fn push(r: &Reference) -> Scope {
        Scope(format!("repository:{}:pull,push", r.repository()))
    }

    /// Deleting from the repository: docker-registry checks the `delete`
    /// action for it (push is not enough).
    pub fn delete(r: &Reference) -> Scope {
        Scope(format!("repository:{}:delete", r.repository()))
    }

    /// The registry's repository list.
    pub fn catalog() -> Scope {
        Scope("registry:catalog:*".into())
    }

    /// Pull access to another repository of the same registry (the source of a mount).
    pub fn pull_repository(repository: &str) -> Scope {
        Scope(format!("repository:{repository}:pull"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The token cache key of a set of scopes.
    pub(crate) fn key(scopes: &[Scope]) -> String {
        scopes.iter().map(|s| s.0.as_str()).collect::<Vec<_>>().join(" ")
    }
}

#[derive(Clone)]
pub(crate) struct Token {
    pub(crate) value: String,
    pub(crate) expires: Instant,
}

/// What a token endpoint answered.
struct TokenReply {
    token: Token,
    /// An OAuth2 refresh token, when asked for with `offline_token=true`.
    refresh_token: Option<String>,
}

impl Client {
    /// The `Authorization` header for a request, fetching a token if needed.
    pub(crate) fn authorization(
        &self,
        host: &HostState,
        host_name: &str,
        scopes: &[Scope],
    ) -> Result<Option<String>, RegistryError> {
        let challenge = host.challenge.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(challenge) = challenge else { return Ok(None) };
        let registry = crate::client::registry_name(host_name);
        match challenge.scheme.as_str() {
            "basic" => Ok(match self.creds.lookup(registry)? {
                Some(Credential::Basic { username, password }) => Some(basic(&username, &password)),
                _ => None,
            }),
            "bearer" => {
                let key = Scope::key(scopes);
                if let Some(t) = host.tokens.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
                    if t.expires > Instant::now() {
                        return Ok(Some(format!("Bearer {}", t.value)));
                    }
                }
                let cred = self.creds.lookup(registry)?;
                let reply = self.fetch_token(&challenge, host_name, scopes, cred.as_ref(), false)?;
                let header = format!("Bearer {}", reply.token.value);
                host.tokens
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, reply.token);
                Ok(Some(header))
            }
            _ => Ok(None),
        }
    }

    /// Gets a token from the challenge's realm. `offline` asks for a refresh
    /// token too (what `login` keeps as an identity token).
    fn fetch_token(
        &self,
        challenge: &Challenge,
        host_name: &str,
        scopes: &[Scope],
        cred: Option<&Credential>,
        offline: bool,
    ) -> Result<TokenReply, RegistryError> {
        let registry = crate::client::registry_name(host_name);
        let realm = challenge.param("realm").unwrap_or_default().to_string();
        let token_err = |message: String| RegistryError::Token {
            realm: sanitize(&realm),
            message: sanitize(&message),
        };
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(token_err(
                "the registry's Bearer challenge has no usable realm URL".into(),
            ));
        }
        let realm_insecure = self.is_insecure(authority(&realm));
        if realm.starts_with("http://") && !realm_insecure {
            return Err(RegistryError::InsecureRealm {
                host: host_name.to_string(),
                realm: sanitize(&realm),
            });
        }
        if let Some(Credential::RegistryToken(t)) = cred {
            let token = Token {
                value: t.clone(),
                expires: Instant::now() + Duration::from_secs(3600),
            };
            return Ok(TokenReply {
                token,
                refresh_token: None,
            });
        }
        let service = challenge.param("service").map(str::to_string);
        let agent = self.agent_for(realm_insecure);
        // GET with query parameters, optionally with Basic credentials.
        let get = |user_pass: Option<(&str, &str)>| {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(s) = &service {
                query.push(("service", s.clone()));
            }
            for s in scopes {
                query.push(("scope", s.0.clone()));
            }
            if offline {
                if let Some((user, _)) = user_pass {
                    query.push(("account", user.to_string()));
                }
                query.push(("client_id", "barge".into()));
                query.push(("offline_token", "true".into()));
            }
            let url = if query.is_empty() {
                realm.clone()
            } else {
                let sep = if realm.contains('?') { '&' } else { '?' };
                format!("{realm}{sep}{}", encode_query(&query))
            };
            let header = user_pass.map(|(u, p)| basic(u, p));
            self.with_retries(|| {
                let mut req = agent.get(&url);
                if let Some(b) = &header {
                    req = req.header("Authorization", b.as_str());
                }
                req.call()
            })
        };
        let resp = match cred {
            Some(Credential::IdentityToken { username, token }) => {
                // OAuth2 refresh-token grant; registries without it answer 404: use GET.
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", token.clone()),
                    ("client_id", "barge".to_string()),
                ];
                if let Some(s) = &service {
                    form.push(("service", s.clone()));
                }
                if !scopes.is_empty() {
                    form.push(("scope", Scope::key(scopes)));
                }
                let body = encode_query(&form);
                let posted = self.with_retries(|| {
                    agent
                        .post(&realm)
                        .header("Content-Type", "application/x-www-form-urlencoded")
                        .send(body.as_str())
                });
                match posted {
                    Ok(r) if r.status().as_u16() == 404 => get(Some((username, token))),
                    other => other,
                }
            }
            Some(Credential::Basic { username, password }) => get(Some((username, password))),
            _ => get(None),
        }
        .map_err(|e| token_err(describe(&e)))?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            let (code, message) = self.error_body(resp);
            let repository = scopes
                .first()
                .and_then(|s| s.0.split(':').nth(1))
                .unwrap_or_default()
                .to_string();
            return Err(RegistryError::Unauthorized {
                host: registry.to_string(),
                repository,
                code,
                message,
            });
        }
        if status != 200 {
            return Err(token_err(format!("HTTP {status}")));
        }
        #[derive(serde::Deserialize)]
        struct Reply {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
            #[serde(default)]
            refresh_token: Option<String>,
        }
        let token_host = sanitize(authority(&realm));
        let body = self
            .read_body(resp, MAX_TOKEN_REPLY_BYTES)
            .map_err(|e| e.into_error("token server reply", &token_host, MAX_TOKEN_REPLY_BYTES))?;
        let reply: Reply = serde_json::from_slice(&body).map_err(|e| token_err(format!("unreadable reply: {e}")))?;
        let value = reply
            .token
            .or(reply.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| token_err("the reply holds no token".into()))?;
        // The token goes into an `Authorization` header of every request:
        // one no registry would accept is refused here, for what it is.
        if value.len() as u64 > MAX_TOKEN_BYTES {
            return Err(RegistryError::TooLarge {
                what: "token".into(),
                host: token_host,
                limit: MAX_TOKEN_BYTES,
            });
        }
        // The spec's minimum lifetime is 60 s; renew a little early.
        let lifetime = reply.expires_in.unwrap_or(60).clamp(60, 24 * 3600);
        let token = Token {
            value,
            expires: Instant::now() + Duration::from_secs(lifetime - 10),
        };
        Ok(TokenReply {
            token,
            refresh_token: reply.refresh_token.filter(|t| !t.is_empty()),
        })
    }

    /// Checks credentials against a registry (`api_host` as in
    /// [`Reference::api_host`]) the way `docker login` does: with the Basic
    /// challenge, a `GET /v2/`; with a Bearer challenge, a token request
    /// asking for a refresh token. Returns the identity token to keep
    /// instead of the password, when the registry issued one.
    pub fn login(&self, api_host: &str, cred: &Credential) -> Result<Option<String>, RegistryError> {
        let host = self.host(api_host)?;
        let challenge = host.challenge.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let rejected = |code: Option<String>, message: Option<String>| RegistryError::LoginRejected {
            registry: crate::client::registry_name(api_host).to_string(),
            message: match (code, message) {
                (_, Some(m)) => m,
                (Some(c), None) => c,
                (None, None) => "incorrect username or password".into(),
            },
        };
        match challenge {
            // The registry asks for nothing: there is nothing to verify.
            None => Ok(None),
            Some(c) if c.scheme == "bearer" => match self.fetch_token(&c, api_host, &[], Some(cred), true) {
                Ok(reply) => Ok(reply.refresh_token),
                Err(RegistryError::Unauthorized { code, message, .. }) => Err(rejected(code, message)),
                Err(e) => Err(e),
            },
            Some(_) => {
                let header = match cred {
                    Credential::Basic { username, password } => basic(username, password),
                    Credential::IdentityToken { username, token } => basic(username, token),
                    Credential::RegistryToken(t) => format!("Bearer {t}"),
                };
                let url = format!("{}/v2/", host.base);
                let resp = self
                    .with_retries(|| {
                        self.agent_for(host.insecure)
                            .get(&url)
                            .header("Authorization", header.as_str())
                            .call()
                    })
                    .map_err(|e| self.connect_error(api_host, &e))?;
                match resp.status().as_u16() {
                    200..=299 => Ok(None),
                    401 | 403 => {
                        let (code, message) = self.error_body(resp);
                        Err(rejected(code, message))
                    }
                    status => Err(RegistryError::Status {
                        host: api_host.to_string(),
                        method: "GET".into(),
                        path: "/v2/".into(),
                        status,
                        code: None,
                        message: None,
                    }),
                }
            }
        }
    }
}
