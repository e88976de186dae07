//! Access control: the auth file, who holds which token, and the layer that
//! checks every request against the route it asks for.
//!
//! Invariants:
//! - A token is never stored, logged or compared in clear: the auth file
//!   holds its SHA-256, and a presented token is hashed and compared with
//!   every stored hash in constant time (no early exit on the first match).
//!   SHA-256 without salt is enough because tokens are 256-bit random
//!   strings made by `footfall auth token`: nobody can guess them back from a
//!   hash, and a slow password hash would only slow every request.
//! - A route not named below needs an organizer: a new route is closed until
//!   someone decides who may use it.
//! - The `rejected` table (raw event text, badge ids in clear) is read
//!   through SQL by organizers only: the layer tells the SQL route who asks.
//! - A sponsor reaches only `GET /v1/reports/stands/{id}` for the stands of
//!   the exhibitors its token names, and `/v1/reports/exhibitors/{id}` for
//!   those exhibitors, compared on the raw path segment (no decoding), so an
//!   encoded path can only be refused, never let through.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use subtle::ConstantTimeEq;

use footfall_schemas::Venue;

use crate::AppError;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// `POST /v1/events` only: scanners and the ticketing system.
    Scanner,
    /// SQL and exports (`/v1/sql`, `/v1/export…`), every report.
    Analyst,
    /// Everything that reads: SQL, exports, reports, the live page and
    /// `/v1/live`, `/metrics`. Not `POST /v1/events`.
    Organizer,
    /// The reports of the stands of the exhibitors named in the file; no SQL.
    Sponsor,
    /// `/metrics` only: for Prometheus, so its configuration never holds a
    /// token that reads SQL.
    Monitor,
}

/// A token's grant, resolved against the venue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    Scanner,
    Analyst,
    Organizer,
    /// The sponsor's exhibitor ids and their stand ids.
    Sponsor {
        exhibitors: BTreeSet<String>,
        stands: BTreeSet<String>,
    },
    Monitor,
}

/// What a request asks for, from its method and raw path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/healthz`, `/readyz`: open to all, they say nothing about the fair.
    Public,
    /// `/v1/events`.
    Events,
    /// `/v1/sql`, `/v1/export…`.
    Sql,
    /// `/v1/reports/stands/{id}` with its raw id.
    StandReport(&'a str),
    /// `/v1/reports/exhibitors/{id}` with its raw id.
    ExhibitorReport(&'a str),
    /// Any other report.
    Report,
    /// `/`, `/v1/live…`: the organizers' live floor.
    Live,
    /// `/metrics`.
    Metrics,
    /// Anything else: organizers only.
    Other,
}

impl<'a> Route<'a> {
    pub fn of(method: &Method, path: &'a str) -> Self {
        let _ = method; // every method of a path needs the same grant
        match path {
            "/healthz" | "/readyz" => Self::Public,
            "/v1/events" => Self::Events,
            "/v1/sql" => Self::Sql,
            "/metrics" => Self::Metrics,
            "/" | "/v1/live" => Self::Live,
            _ if path.starts_with("/v1/live/") => Self::Live,
            _ if path == "/v1/export" || path.starts_with("/v1/export/") => Self::Sql,
            _ => match path.strip_prefix("/v1/reports/") {
                Some(rest) => {
                    let one = |id: &str| !id.is_empty() && !id.contains('/');
                    if let Some(id) = rest.strip_prefix("stands/").filter(|id| one(id)) {
                        Self::StandReport(id)
                    } else if let Some(id) = rest.strip_prefix("exhibitors/").filter(|id| one(id)) {
                        Self::ExhibitorReport(id)
                    } else {
                        Self::Report
                    }
                }
                None => Self::Other,
            },
        }
    }
}

impl Grant {
    /// Whether this grant may use `route`.
    pub fn may(&self, route: &Route<'_>) -> bool {
        use Grant as G;
        match route {
            Route::Public => true,
            Route::Events => matches!(self, G::Scanner),
            Route::Sql | Route::Report => matches!(self, G::Analyst | G::Organizer),
            Route::StandReport(id) => match self {
                G::Analyst | G::Organizer => true,
                G::Sponsor { stands, .. } => stands.contains(*id),
                G::Scanner | G::Monitor => false,
            },
            Route::ExhibitorReport(id) => match self {
                G::Analyst | G::Organizer => true,
                G::Sponsor { exhibitors, .. } => exhibitors.contains(*id),
                G::Scanner | G::Monitor => false,
            },
            Route::Live | Route::Other => matches!(self, G::Organizer),
            Route::Metrics => matches!(self, G::Organizer | G::Monitor),
        }
    }
}

/// The auth file (TOML), one `[[token]]` table per holder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    /// Who holds it, for the operator's eyes (and debug logs); not secret.
    name: String,
    /// Lowercase hex SHA-256 of the token.
    sha256: String,
    role: RoleName,
    /// Sponsors only: the exhibitor ids (from the venue file) whose stands
    /// the token may see.
    #[serde(default)]
    exhibitors: Vec<String>,
}

struct Holder {
    name: String,
    hash: [u8; 32],
    grant: Grant,
}

/// The loaded auth file.
pub struct Auth {
    holders: Vec<Holder>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names and roles only: hashes stay out of logs too.
        f.debug_list()
            .entries(self.holders.iter().map(|h| (&h.name, &h.grant)))
            .finish()
    }
}

impl Auth {
    /// Reads and checks an auth file. Fails on unreadable or bad TOML, a
    /// hash that is not 64 hex digits, a hash used twice, a sponsor without
    /// exhibitors, exhibitors on another role, or an exhibitor id the venue
    /// does not know (a typo must not silently show nothing, or everything).
    pub fn load(path: &Path, venue: &Venue) -> Result<Self, AppError> {
        let text = std::fs::read_to_string(path).map_err(AppError::io(format!(
            "cannot read the auth file {}",
            path.display()
        )))?;
        Self::parse(&text, venue).map_err(|e| AppError::Config(format!("{}: {e}", path.display())))
    }

    /// [`Auth::load`] on the file's text.
    pub fn parse(text: &str, venue: &Venue) -> Result<Self, String> {
        let file: AuthFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.token.is_empty() {
            return Err("no [[token]]: nobody could use the server".into());
        }
        let mut holders = Vec::with_capacity(file.token.len());
        for entry in file.token {
            let who = format!("token {:?}", entry.name);
            let hash: [u8; 32] = hex::decode(entry.sha256.trim())
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| format!("{who}: sha256 must be 64 hex digits"))?;
            if holders.iter().any(|h: &Holder| h.hash == hash) {
                return Err(format!("{who}: the same sha256 appears twice"));
            }
            let grant = match entry.role {
                RoleName::Sponsor => {
                    if entry.exhibitors.is_empty() {
                        return Err(format!("{who}: a sponsor needs exhibitors = [...]"));
                    }
                    let mut stands = BTreeSet::new();
                    for exhibitor in &entry.exhibitors {
                        let before = stands.len();
                        stands.extend(
                            venue
                                .stands
                                .iter()
                                .filter(|s| &s.exhibitor_id == exhibitor)
                                .map(|s| s.id.clone()),
                        );
                        if stands.len() == before {
                            return Err(format!(
                                "{who}: exhibitor {exhibitor:?} has no stand in venue {}",
                                venue.id
                            ));
                        }
                    }
                    Grant::Sponsor {
                        exhibitors: entry.exhibitors.iter().cloned().collect(),
                        stands,
                    }
                }
                _ if !entry.exhibitors.is_empty() => {
                    return Err(format!("{who}: only a sponsor has exhibitors"));
                }
                RoleName::Scanner => Grant::Scanner,
                RoleName::Analyst => Grant::Analyst,
                RoleName::Organizer => Grant::Organizer,
                RoleName::Monitor => Grant::Monitor,
            };
            holders.push(Holder {
                name: entry.name,
                hash,
                grant,
            });
        }
        Ok(Self { holders })
    }

    /// How many tokens the file holds.
    pub fn len(&self) -> usize {
        self.holders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.holders.is_empty()
    }

    /// The holder of a presented token. Every stored hash is compared, in
    /// constant time, whatever matches.
    fn holder(&self, token: &[u8]) -> Option<&Holder> {
        let presented: [u8; 32] = Sha256::digest(token).into();
        let mut found = None;
        for holder in &self.holders {
            if bool::from(holder.hash.ct_eq(&presented)) {
                found = Some(holder);
            }
        }
        found
    }

    /// The grant of the token a request carries, if any is valid.
    pub fn grant(&self, headers: &HeaderMap) -> Option<&Grant> {
        let token = presented_token(headers)?;
        let holder = self.holder(&token)?;
        tracing::debug!(holder = %holder.name, "authenticated");
        Some(&holder.grant)
    }
}

/// The token of `Authorization: Bearer <token>`, or the password of
/// `Authorization: Basic` (the user name is ignored): a browser asks for it
/// on the live page and sends it again with the page's `/v1/live` stream,
/// which cannot carry a Bearer header.
fn presented_token(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then(|| rest.as_bytes().to_vec());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        let password = &decoded[colon + 1..];
        return (!password.is_empty()).then(|| password.to_vec());
    }
    None
}

/// Wraps every route of `app` (and its fallback) in the check.
pub fn protect(app: Router, auth: Arc<Auth>) -> Router {
    app.layer(axum::middleware::from_fn_with_state(auth, check))
}

async fn check(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let route = Route::of(request.method(), request.uri().path());
    if route == Route::Public {
        return next.run(request).await;
    }
    match auth.grant(request.headers()) {
        None => refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this route needs a token: Authorization: Bearer <token>",
        ),
        Some(grant) if !grant.may(&route) => refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token's role does not allow this route",
        ),
        Some(grant) => {
            let may_read_rejected = matches!(grant, Grant::Organizer);
            let mut request = request;
            request
                .extensions_mut()
                .insert(footfall_query::Caller { may_read_rejected });
            next.run(request).await
        }
    }
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": message, "code": code });
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        let headers = response.headers_mut();
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"footfall\""),
        );
        // Lets a browser ask for the token on the live page (as password).
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"footfall\", charset=\"UTF-8\""),
        );
    }
    response
}

/// The lowercase hex SHA-256 of a token, as the auth file stores it.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// A new random token: 32 bytes from the OS's generator, in hex.
pub fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    // The thread generator is a CSPRNG (ChaCha) seeded from the OS.
    rand::rng().fill_bytes(&mut bytes);
    format!("ff_{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn venue() -> Venue {
        footfall_schemas::venue::reference()
    }

    /// The first exhibitor of the reference fair and its stands, and a stand
    /// of another exhibitor.
    fn sponsor_and_other_stand(venue: &Venue) -> (String, BTreeSet<String>, String) {
        let exhibitor = venue.stands[0].exhibitor_id.clone();
        let own: BTreeSet<String> = venue
            .stands
            .iter()
            .filter(|s| s.exhibitor_id == exhibitor)
            .map(|s| s.id.clone())
            .collect();
        let other = venue
            .stands
            .iter()
            .find(|s| s.exhibitor_id != exhibitor)
            .map(|s| s.id.clone())
            .expect("the reference fair has more than one exhibitor");
        (exhibitor, own, other)
    }

    fn file(entries: &str) -> String {
        entries.to_owned()
    }

    #[test]
    fn the_file_resolves_sponsors_to_their_stands() {
        let venue = venue();
        let (exhibitor, own, _) = sponsor_and_other_stand(&venue);
        let text = file(&format!(
            "[[token]]\nname = \"s\"\nsha256 = \"{}\"\nrole = \"sponsor\"\nexhibitors = [\"{exhibitor}\"]\n\
             [[token]]\nname = \"a\"\nsha256 = \"{}\"\nrole = \"analyst\"\n",
            hash_token("sponsor-token"),
            hash_token("analyst-token"),
        ));
        let auth = Auth::parse(&text, &venue).unwrap();
        assert_eq!(auth.len(), 2);
        let bearer = |t: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                format!("Bearer {t}").parse().unwrap(),
            );
            h
        };
        assert_eq!(
            auth.grant(&bearer("sponsor-token")),
            Some(&Grant::Sponsor {
                exhibitors: [exhibitor].into(),
                stands: own
            })
        );
        assert_eq!(auth.grant(&bearer("analyst-token")), Some(&Grant::Analyst));
        assert_eq!(auth.grant(&bearer("analyst-tokeN")), None);
        assert_eq!(auth.grant(&HeaderMap::new()), None);
        // Basic: the password is the token, the user name is ignored.
        let mut basic = HeaderMap::new();
        let creds = base64::engine::general_purpose::STANDARD.encode("anyone:analyst-token");
        basic.insert(
            header::AUTHORIZATION,
            format!("Basic {creds}").parse().unwrap(),
        );
        assert_eq!(auth.grant(&basic), Some(&Grant::Analyst));
        // The Debug form shows names and roles, never a hash.
        let shown = format!("{auth:?}");
        assert!(!shown.contains(&hash_token("analyst-token")), "{shown}");
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let venue = venue();
        let h = hash_token("t");
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "no [[token]]"),
            (
                "[[token]]\nname=\"x\"\nsha256=\"abc\"\nrole=\"analyst\"\n".into(),
                "64 hex",
            ),
            (
                format!("[[token]]\nname=\"x\"\nsha256=\"{h}\"\nrole=\"admin\"\n"),
                "unknown variant",
            ),
            (
                format!(
                    "[[token]]\nname=\"x\"\ntoken=\"plain\"\nsha256=\"{h}\"\nrole=\"analyst\"\n"
                ),
                "unknown field",
            ),
            (
                format!("[[token]]\nname=\"x\"\nsha256=\"{h}\"\nrole=\"sponsor\"\n"),
                "needs exhibitors",
            ),
            (
                format!(
                    "[[token]]\nname=\"x\"\nsha256=\"{h}\"\nrole=\"sponsor\"\nexhibitors=[\"nobody\"]\n"
                ),
                "has no stand",
            ),
            (
                format!(
                    "[[token]]\nname=\"x\"\nsha256=\"{h}\"\nrole=\"analyst\"\nexhibitors=[\"nobody\"]\n"
                ),
                "only a sponsor",
            ),
            (
                format!(
                    "[[token]]\nname=\"x\"\nsha256=\"{h}\"\nrole=\"analyst\"\n[[token]]\nname=\"y\"\nsha256=\"{h}\"\nrole=\"scanner\"\n"
                ),
                "twice",
            ),
        ];
        for (text, why) in cases {
            match Auth::parse(&text, &venue) {
                Ok(_) => panic!("accepted: {text}"),
                Err(e) => assert!(e.contains(why), "{text}: {e} (wanted {why})"),
            }
        }
    }

    #[test]
    fn every_grant_against_every_route() {
        let venue = venue();
        let (exhibitor, own, other) = sponsor_and_other_stand(&venue);
        let own_stand = own.iter().next().unwrap().clone();
        let sponsor = Grant::Sponsor {
            exhibitors: [exhibitor.clone()].into(),
            stands: own,
        };
        let get = Method::GET;
        let post = Method::POST;
        let own_path = format!("/v1/reports/stands/{own_stand}");
        let other_path = format!("/v1/reports/stands/{other}");
        let encoded = format!("/v1/reports/stands/{}", own_stand.replace('0', "%30"));
        let trailing = format!("{own_path}/");
        // (method, path, [scanner, analyst, organizer, sponsor, monitor])
        let table: Vec<(&Method, String, [bool; 5])> = vec![
            (&get, "/healthz".into(), [true; 5]),
            (&get, "/readyz".into(), [true; 5]),
            (
                &post,
                "/v1/events".into(),
                [true, false, false, false, false],
            ),
            (&post, "/v1/sql".into(), [false, true, true, false, false]),
            (
                &get,
                "/v1/export/scans".into(),
                [false, true, true, false, false],
            ),
            (&get, own_path.clone(), [false, true, true, true, false]),
            (&get, other_path.clone(), [false, true, true, false, false]),
            (&get, trailing.clone(), [false, true, true, false, false]),
            (
                &get,
                "/v1/reports/poles/products".into(),
                [false, true, true, false, false],
            ),
            (
                &get,
                format!("/v1/reports/exhibitors/{exhibitor}"),
                [false, true, true, true, false],
            ),
            (
                &get,
                "/v1/reports/exhibitors/someone-else".into(),
                [false, true, true, false, false],
            ),
            (
                &get,
                format!("/v1/reports/exhibitors/{exhibitor}/x"),
                [false, true, true, false, false],
            ),
            (&get, "/".into(), [false, false, true, false, false]),
            (&get, "/v1/live".into(), [false, false, true, false, false]),
            (
                &get,
                "/v1/live/state".into(),
                [false, false, true, false, false],
            ),
            (&get, "/metrics".into(), [false, false, true, false, true]),
            (
                &get,
                "/v1/new-thing".into(),
                [false, false, true, false, false],
            ),
            (
                &get,
                "/healthz/../v1/sql".into(),
                [false, false, true, false, false],
            ),
        ];
        let grants = [
            Grant::Scanner,
            Grant::Analyst,
            Grant::Organizer,
            sponsor.clone(),
            Grant::Monitor,
        ];
        for (method, path, want) in table {
            let route = Route::of(method, &path);
            for (grant, want) in grants.iter().zip(want) {
                assert_eq!(grant.may(&route), want, "{grant:?} {method} {path}");
            }
        }
        // An encoded id is refused unless it is literally one of the stands
        // (only ever a false refusal, never a way around).
        if encoded != own_path {
            assert!(!sponsor.may(&Route::of(&get, &encoded)));
        }
    }

    #[test]
    fn new_tokens_are_random_and_hash_stably() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 64);
        assert_eq!(hash_token(&a), hash_token(&format!("{a}\n")));
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
