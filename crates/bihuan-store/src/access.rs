//! Who may come in: sign-in sessions, channel tokens, and the record of failed sign-ins.
//!
//! Tokens are random, shown once, and stored only as their SHA-256.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::entity::{api_token, login_failure, session, user};
use crate::{Result, Store, StoreError};

/// The prefix of a user's session token.
pub const SESSION_PREFIX: &str = "bhs_";
/// The prefix of a channel's API token.
pub const CHANNEL_PREFIX: &str = "bhc_";
/// The only scope channel tokens have today.
pub const SCOPE_RATINGS_WRITE: &str = "ratings:write";

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

impl Store {
    /// Opens a session for a user; returns the token (shown once) and when it expires.
    pub async fn create_session(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<(String, DateTime<Utc>)> {
        self.bounded(async {
            let token = new_token(SESSION_PREFIX);
            let expires_at = now + ttl;
            session::ActiveModel {
                token_hash: Set(token_hash(&token)),
                user_id: Set(user_id),
                created_at: Set(now),
                expires_at: Set(expires_at),
                revoked_at: Set(None),
            }
            .insert(&self.db)
            .await?;
            Ok((token, expires_at))
        })
        .await
    }

    /// The user of a live session token: known, not revoked, not expired, account not disabled.
    pub async fn session_user(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<user::Model>> {
        self.bounded(async {
            let Some(s) = session::Entity::find_by_id(token_hash(token))
                .one(&self.db)
                .await?
            else {
                return Ok(None);
            };
            if s.revoked_at.is_some() || s.expires_at <= now {
                return Ok(None);
            }
            Ok(user::Entity::find_by_id(s.user_id)
                .one(&self.db)
                .await?
                .filter(|u| !u.disabled))
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

    /// Every channel token's record (never the token itself: only its hash is stored), oldest first.
    pub async fn api_tokens(&self) -> Result<Vec<api_token::Model>> {
        Ok(api_token::Entity::find()
            .order_by_asc(api_token::Column::CreatedAt)
            .all(&self.db)
            .await?)
    }

    /// Revokes a session token; false when it was not live.
    pub async fn revoke_session(&self, token: &str, now: DateTime<Utc>) -> Result<bool> {
        self.bounded(async {
            let result = session::Entity::update_many()
                .set(session::ActiveModel {
                    revoked_at: Set(Some(now)),
                    ..Default::default()
                })
                .filter(session::Column::TokenHash.eq(token_hash(token)))
                .filter(session::Column::RevokedAt.is_null())
                .exec(&self.db)
                .await?;
            Ok(result.rows_affected == 1)
        })
        .await
    }

    /// Creates a channel token; returns it (it is shown once and stored only as a hash).
    pub async fn add_api_token(
        &self,
        name: &str,
        scope: &str,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(StoreError::Invalid {
                field: "name".into(),
                message: "令牌名称不能为空，最长 100 个字符".into(),
            });
        }
        if scope != SCOPE_RATINGS_WRITE {
            return Err(StoreError::Invalid {
                field: "scope".into(),
                message: format!("未知的权限范围 {scope}（可用：{SCOPE_RATINGS_WRITE}）"),
            });
        }
        if api_token::Entity::find()
            .filter(api_token::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .is_some()
        {
            return Err(StoreError::Duplicate {
                what: "令牌",
                key: name.to_owned(),
            });
        }
        let token = new_token(CHANNEL_PREFIX);
        api_token::ActiveModel {
            token_hash: Set(token_hash(&token)),
            name: Set(name.to_owned()),
            scope: Set(scope.to_owned()),
            created_at: Set(now),
            revoked_at: Set(None),
        }
        .insert(&self.db)
        .await?;
        Ok(token)
    }

    /// The live channel token matching `token`.
    pub async fn api_token(&self, token: &str) -> Result<Option<api_token::Model>> {
        self.bounded(async {
            Ok(api_token::Entity::find_by_id(token_hash(token))
                .one(&self.db)
                .await?
                .filter(|t| t.revoked_at.is_none()))
        })
        .await
    }

    /// Records a failed sign-in under each key (`user:NAME`, `addr:IP`).
    pub async fn record_login_failure(&self, keys: &[String], now: DateTime<Utc>) -> Result<()> {
        for key in keys {
            login_failure::ActiveModel {
                key: Set(key.clone()),
                at: Set(now),
                ..Default::default()
            }
            .insert(&self.db)
            .await?;
        }
        // Old rows serve no window any more.
        login_failure::Entity::delete_many()
            .filter(login_failure::Column::At.lt(now - Duration::days(1)))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// How many failed sign-ins a key has since `since`.
    pub async fn login_failures_since(&self, key: &str, since: DateTime<Utc>) -> Result<u64> {
        Ok(login_failure::Entity::find()
            .filter(login_failure::Column::Key.eq(key))
            .filter(login_failure::Column::At.gte(since))
            .count(&self.db)
            .await?)
    }

    /// Forgets the failures of a key (after a successful sign-in).
    pub async fn clear_login_failures(&self, key: &str) -> Result<()> {
        login_failure::Entity::delete_many()
            .filter(login_failure::Column::Key.eq(key))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
