//! Who may come in: sign-in sessions and their life cycle, channel tokens bound to a scope (and a
//! ratings token to its source), and the sign-in throttle.
//!
//! Tokens are random, shown once, and stored only as their SHA-256.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, JoinType,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::entity::{api_token, login_failure, session, user};
use crate::scope::Reach;
use crate::{Result, Store, StoreError};

/// The prefix of a user's session token.
pub const SESSION_PREFIX: &str = "bhs_";
/// The prefix of a channel's API token.
pub const CHANNEL_PREFIX: &str = "bhc_";
/// The fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The most bytes a password may have (argon2 hashes any length; a bound keeps a request cheap).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// A session that was not used for a minute is marked used again on its next request (not on every
/// request, which would be a write per read).
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// The SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token: the prefix and 256 bits from the operating system's generator (two v4 UUIDs).
pub(crate) fn new_token(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    )
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope {
    /// `ratings:write`: a channel pushing the ratings of its source.
    RatingsWrite,
    /// `metrics:read`: a monitoring system reading `/metrics`.
    MetricsRead,
}

impl TokenScope {
    /// Every scope.
    pub const ALL: [TokenScope; 2] = [TokenScope::RatingsWrite, TokenScope::MetricsRead];

    /// The scope as written (`ratings:write`, `metrics:read`).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::RatingsWrite => "ratings:write",
            TokenScope::MetricsRead => "metrics:read",
        }
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenScope {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self> {
        TokenScope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s.trim())
            .ok_or_else(|| StoreError::Invalid {
                field: "scope".into(),
                message: format!("未知的权限范围 {s}（可用：ratings:write、metrics:read）"),
            })
    }
}

/// A live API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Its name (the channel, or the monitoring system).
    pub name: String,
    /// What it may do.
    pub scope: TokenScope,
    /// For a ratings token, the only `source` its ratings may have.
    pub source: Option<String>,
}

impl ApiToken {
    fn of(row: api_token::Model) -> Result<Self> {
        let scope = row.scope.parse().map_err(|_| {
            StoreError::Corrupt(format!("token {} has scope {}", row.name, row.scope))
        })?;
        Ok(Self {
            name: row.name,
            scope,
            source: row.source,
        })
    }
}

/// What the throttle says of a sign-in attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInAttempt {
    /// It may go on; these are the rows that count it.
    Allowed(Vec<i64>),
    /// Too many attempts: try again after this long.
    Throttled(Duration),
}

/// A key of the sign-in throttle and the attempts it allows in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleKey {
    /// `pair:USERNAME|ADDRESS` or `addr:ADDRESS`.
    pub key: String,
    /// Attempts allowed in the window.
    pub max: u64,
}

/// The user of a live session and the reach of their unit.
#[derive(Debug, Clone)]
pub struct SessionUser {
    /// The user.
    pub user: user::Model,
    /// Their unit's subtree (docs/DOMAIN.md, "Scope"); `None` for a user of no unit.
    pub reach: Option<Reach>,
}

impl Store {
    /// Opens a session for a user; returns the token (shown once) and when it expires.
    pub async fn create_session(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<(String, DateTime<Utc>)> {
        self.write(async |txn| {
            let token = new_token(SESSION_PREFIX);
            let expires_at = now + ttl;
            session::ActiveModel {
                token_hash: Set(token_hash(&token)),
                user_id: Set(user_id),
                created_at: Set(now),
                expires_at: Set(expires_at),
                revoked_at: Set(None),
                last_seen_at: Set(Some(now)),
            }
            .insert(txn)
            .await?;
            Ok((token, expires_at))
        })
        .await
    }

    /// The user of a live session token: known, not revoked, not expired, used within `idle`,
    /// account not disabled; with the reach of their unit as the organization stood when the session
    /// was read (the organization's revision comes in the same statement). A live session is marked
    /// used (at most once a minute).
    pub async fn session_user(
        &self,
        token: &str,
        now: DateTime<Utc>,
        idle: Duration,
    ) -> Result<Option<SessionUser>> {
        let found = self
            .bounded(async {
                let query = session::Entity::find_by_id(token_hash(token))
                    .select_also(user::Entity)
                    .join(
                        JoinType::LeftJoin,
                        session::Entity::belongs_to(user::Entity)
                            .from(session::Column::UserId)
                            .to(user::Column::Id)
                            .into(),
                    )
                    .expr_as(
                        Expr::cust(format!("({})", crate::org_tree::REVISION_QUERY)),
                        "org_revision",
                    )
                    .build(self.db.get_database_backend());
                let Some(row) = self.db.query_one_raw(query).await? else {
                    return Ok(None);
                };
                // `select_also` names the columns of its two entities `A_…` and `B_…`.
                let s = session::Model::from_query_result(&row, "A_")?;
                let user = user::Model::from_query_result_optional(&row, "B_")?;
                let revision: i64 = row.try_get("", "org_revision")?;
                let last_seen = s.last_seen_at.unwrap_or(s.created_at);
                if s.revoked_at.is_some() || s.expires_at <= now || last_seen + idle <= now {
                    return Ok(None);
                }
                let user = user.filter(|u| !u.disabled);
                Ok(user.map(|u| (u, s.token_hash, last_seen, revision)))
            })
            .await?;
        let Some((user, hash, last_seen, revision)) = found else {
            return Ok(None);
        };
        let reach = match &user.unit_code {
            Some(unit) => Some(self.bounded(self.org_at(revision)).await?.reach(unit)),
            None => None,
        };
        if last_seen + TOUCH_EVERY <= now {
            // Marking it used is no reason to refuse a read: a database that takes no writes
            // still answers them, and the session just ages as if unused.
            let touched = self
                .bounded(async {
                    session::Entity::update_many()
                        .col_expr(session::Column::LastSeenAt, Expr::value(now))
                        .filter(session::Column::TokenHash.eq(hash))
                        .exec(self.write_connection())
                        .await?;
                    Ok(())
                })
                .await;
            if let Err(e) = touched {
                tracing::debug!(error = %e, "a session could not be marked used");
            }
        }
        Ok(Some(SessionUser { user, reach }))
    }

    /// Revokes a session token; false when it was not live.
    pub async fn revoke_session(&self, token: &str, now: DateTime<Utc>) -> Result<bool> {
        self.write(async |txn| {
            let result = session::Entity::update_many()
                .col_expr(session::Column::RevokedAt, Expr::value(now))
                .filter(session::Column::TokenHash.eq(token_hash(token)))
                .filter(session::Column::RevokedAt.is_null())
                .exec(txn)
                .await?;
            Ok(result.rows_affected == 1)
        })
        .await
    }

    /// Every user account, by username.
    pub async fn users(&self) -> Result<Vec<user::Model>> {
        Ok(user::Entity::find()
            .order_by_asc(user::Column::Username)
            .all(&self.db)
            .await?)
    }

    /// Changes a user's password after checking the current one; every session of the user but
    /// `keep` (the token asking) ends. A wrong current password is [`StoreError::BadPassword`].
    pub async fn change_password(
        &self,
        user_id: Uuid,
        current: &str,
        new: &str,
        keep: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        // The new password's rules first (cheap), the current one's check next (slow), and the
        // new hash (slow) only once the current password is known right.
        check_password(new)?;
        let user = user::Entity::find_by_id(user_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "用户",
                id: user_id.to_string(),
            })?;
        let (stored, current) = (user.password_hash.clone(), current.to_owned());
        let valid = tokio::task::spawn_blocking(move || crate::verify_password(&stored, &current))
            .await
            .map_err(|e| StoreError::Password(e.to_string()))?;
        if !valid {
            return Err(StoreError::BadPassword);
        }
        let new_hash = hash_password(new).await?;
        self.replace_password(user.id, &user.password_hash, new_hash, keep, now)
            .await
    }

    /// Sets a user's password (an admin's reset); every session of the user ends.
    pub async fn set_password(&self, username: &str, new: &str, now: DateTime<Utc>) -> Result<()> {
        let new_hash = hash_password(new).await?;
        let user = self.existing_user(username).await?;
        self.replace_password(user.id, &user.password_hash, new_hash, None, now)
            .await
    }

    /// Writes the new hash if the stored one is still `old` (a concurrent change wins otherwise) and
    /// ends the user's sessions but `keep`, in one transaction.
    async fn replace_password(
        &self,
        user_id: Uuid,
        old: &str,
        new_hash: String,
        keep: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.write(async |txn| {
            let changed = user::Entity::update_many()
                .col_expr(user::Column::PasswordHash, Expr::value(new_hash))
                .filter(user::Column::Id.eq(user_id))
                .filter(user::Column::PasswordHash.eq(old))
                .exec(txn)
                .await?;
            if changed.rows_affected != 1 {
                return Err(StoreError::Conflict {
                    expected: 0,
                    actual: 1,
                });
            }
            end_sessions(txn, user_id, keep, now).await
        })
        .await
    }

    /// Disables or enables an account. A disabled user's sessions end at once, and they cannot sign
    /// in until enabled again.
    pub async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Result<user::Model> {
        let user = self.existing_user(username).await?;
        self.write(async |txn| {
            let changed = user::Entity::update_many()
                .col_expr(user::Column::Disabled, Expr::value(disabled))
                .filter(user::Column::Id.eq(user.id))
                .exec(txn)
                .await?;
            if changed.rows_affected != 1 {
                return Err(StoreError::NotFound {
                    what: "用户",
                    id: username.to_owned(),
                });
            }
            if disabled {
                end_sessions(txn, user.id, None, now).await?;
            }
            Ok(())
        })
        .await?;
        Ok(user::Model { disabled, ..user })
    }

    async fn existing_user(&self, username: &str) -> Result<user::Model> {
        self.user_by_name(username)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "用户",
                id: username.to_owned(),
            })
    }

    /// Every API token's record (never the token itself: only its hash is stored), oldest first.
    pub async fn api_tokens(&self) -> Result<Vec<api_token::Model>> {
        Ok(api_token::Entity::find()
            .order_by_asc(api_token::Column::CreatedAt)
            .all(&self.db)
            .await?)
    }

    /// Creates an API token; returns it (it is shown once and stored only as a hash). A ratings
    /// token sends the ratings of `source` only (default: its name); other scopes take no source.
    pub async fn add_api_token(
        &self,
        name: &str,
        scope: TokenScope,
        source: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let name = bounded_text("name", name, 100, "令牌名称")?;
        let source = match (scope, source) {
            (TokenScope::RatingsWrite, source) => Some(bounded_text(
                "source",
                source.unwrap_or(&name),
                100,
                "来源系统",
            )?),
            (_, None) => None,
            (_, Some(_)) => {
                return Err(StoreError::Invalid {
                    field: "source".into(),
                    message: format!("权限范围 {scope} 的令牌不绑定来源系统"),
                });
            }
        };
        self.write(async |txn| {
            if api_token::Entity::find()
                .filter(api_token::Column::Name.eq(&name))
                .one(txn)
                .await?
                .is_some()
            {
                return Err(StoreError::Duplicate {
                    what: "令牌",
                    key: name.clone(),
                });
            }
            let token = new_token(CHANNEL_PREFIX);
            api_token::ActiveModel {
                token_hash: Set(token_hash(&token)),
                name: Set(name.clone()),
                scope: Set(scope.as_str().to_owned()),
                source: Set(source),
                created_at: Set(now),
                revoked_at: Set(None),
            }
            .insert(txn)
            .await?;
            Ok(token)
        })
        .await
    }

    /// Revokes the token of this name: it answers 401 from its next request.
    pub async fn revoke_api_token(&self, name: &str, now: DateTime<Utc>) -> Result<()> {
        self.write(async |txn| {
            let revoked = api_token::Entity::update_many()
                .col_expr(api_token::Column::RevokedAt, Expr::value(now))
                .filter(api_token::Column::Name.eq(name.trim()))
                .filter(api_token::Column::RevokedAt.is_null())
                .exec(txn)
                .await?;
            if revoked.rows_affected == 0 {
                return Err(StoreError::NotFound {
                    what: "有效令牌",
                    id: name.trim().to_owned(),
                });
            }
            Ok(())
        })
        .await
    }

    /// The live API token matching `token`.
    pub async fn api_token(&self, token: &str) -> Result<Option<ApiToken>> {
        let row = self
            .bounded(async {
                Ok(api_token::Entity::find_by_id(token_hash(token))
                    .one(&self.db)
                    .await?
                    .filter(|t| t.revoked_at.is_none()))
            })
            .await?;
        row.map(ApiToken::of).transpose()
    }

    /// Counts a sign-in attempt under each key before the password is checked, then sees whether
    /// any key has more attempts in the window than it allows. Counting first makes the throttle
    /// hold under parallel attempts: each attempt is written (committed) before it counts, so the
    /// k-th attempt sees at least k, and no more than `max` get through.
    pub async fn begin_sign_in(
        &self,
        keys: &[ThrottleKey],
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<SignInAttempt> {
        let mut ids = Vec::with_capacity(keys.len());
        for k in keys {
            let row = self
                .bounded(async {
                    Ok(login_failure::ActiveModel {
                        key: Set(k.key.clone()),
                        at: Set(now),
                        ..Default::default()
                    }
                    .insert(self.write_connection())
                    .await?)
                })
                .await?;
            ids.push(row.id);
        }
        let since = now - window;
        for k in keys {
            let attempts = self
                .bounded(async {
                    Ok(login_failure::Entity::find()
                        .filter(login_failure::Column::Key.eq(&k.key))
                        .filter(login_failure::Column::At.gt(since))
                        .count(&self.db)
                        .await?)
                })
                .await?;
            if attempts > k.max {
                let oldest = login_failure::Entity::find()
                    .filter(login_failure::Column::Key.eq(&k.key))
                    .filter(login_failure::Column::At.gt(since))
                    .order_by_asc(login_failure::Column::At)
                    .one(&self.db)
                    .await?
                    .map_or(now, |r| r.at);
                let wait = (oldest + window - now).max(Duration::seconds(1));
                return Ok(SignInAttempt::Throttled(wait));
            }
        }
        Ok(SignInAttempt::Allowed(ids))
    }

    /// A sign-in succeeded: its own attempt rows go, and so do the failures of the keys in `clear`
    /// (the user at this address), so that a typo now and then never adds up.
    pub async fn end_sign_in(&self, attempt: &[i64], clear: &[String]) -> Result<()> {
        self.write(async |txn| {
            login_failure::Entity::delete_many()
                .filter(login_failure::Column::Id.is_in(attempt.iter().copied()))
                .exec(txn)
                .await?;
            login_failure::Entity::delete_many()
                .filter(login_failure::Column::Key.is_in(clear.iter().cloned()))
                .exec(txn)
                .await?;
            Ok(())
        })
        .await
    }

    /// Removes what no longer serves: sessions ended more than a day ago (expired or revoked), and
    /// sign-in attempts older than a day. Returns how many rows went.
    pub async fn prune_access(&self, now: DateTime<Utc>) -> Result<u64> {
        let before = now - Duration::days(1);
        self.write(async |txn| {
            let sessions = session::Entity::delete_many()
                .filter(
                    sea_orm::Condition::any()
                        .add(session::Column::ExpiresAt.lt(before))
                        .add(session::Column::RevokedAt.lt(before)),
                )
                .exec(txn)
                .await?;
            let attempts = login_failure::Entity::delete_many()
                .filter(login_failure::Column::At.lt(before))
                .exec(txn)
                .await?;
            Ok(sessions.rows_affected + attempts.rows_affected)
        })
        .await
    }
}

/// Ends every live session of a user but `keep` (the token asking), in the caller's transaction.
async fn end_sessions(
    txn: &sea_orm::DatabaseTransaction,
    user_id: Uuid,
    keep: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut live = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null());
    if let Some(keep) = keep {
        live = live.filter(session::Column::TokenHash.ne(token_hash(keep)));
    }
    live.exec(txn).await?;
    Ok(())
}

/// A password's hash (argon2id, PHC string), computed off the async workers; refuses a password
/// shorter than [`MIN_PASSWORD_CHARS`] or longer than [`MAX_PASSWORD_BYTES`].
pub(crate) async fn hash_password(password: &str) -> Result<String> {
    check_password(password)?;
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        use argon2::{Argon2, PasswordHasher};
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| StoreError::Password(e.to_string()))
    })
    .await
    .map_err(|e| StoreError::Password(e.to_string()))?
}

/// Whether a new password is long enough (and not absurdly long).
pub fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(StoreError::WeakPassword {
            min: MIN_PASSWORD_CHARS,
        });
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(StoreError::Invalid {
            field: "password".into(),
            message: format!("密码不能超过 {MAX_PASSWORD_BYTES} 字节"),
        });
    }
    Ok(())
}

/// `text` trimmed, not empty and at most `max` characters.
pub(crate) fn bounded_text(field: &str, text: &str, max: usize, what: &str) -> Result<String> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > max {
        return Err(StoreError::Invalid {
            field: field.into(),
            message: format!("{what}不能为空，最长 {max} 个字符"),
        });
    }
    Ok(text.to_owned())
}
