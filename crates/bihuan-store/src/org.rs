//! The organization: units (a tree) and user accounts.

use std::collections::{BTreeSet, HashMap};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use bihuan_core::Role;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::entity::{unit, user};
use crate::{Result, Store, StoreError};

/// A unit to add.
#[derive(Debug, Clone)]
pub struct NewUnit {
    /// Its code, e.g. `shaba-social`.
    pub code: String,
    /// Its Chinese name.
    pub name: String,
    /// The code of its parent unit.
    pub parent: Option<String>,
    /// Its mail address.
    pub email: Option<String>,
}

/// A user to add.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login name.
    pub username: String,
    /// Role (not `rater` or `scheduler`).
    pub role: Role,
    /// The unit they belong to.
    pub unit: Option<String>,
    /// Mail address for notifications.
    pub email: Option<String>,
}

impl Store {
    /// Adds a unit under its parent.
    pub async fn add_unit(&self, new: &NewUnit, now: DateTime<Utc>) -> Result<unit::Model> {
        let code = checked_code("code", &new.code)?;
        let name = new.name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid {
                field: "name".into(),
                message: "单位名称不能为空".into(),
            });
        }
        let email = new
            .email
            .as_deref()
            .map(|e| checked_email("email", e))
            .transpose()?;
        let txn = self.begin_write().await?;
        if unit::Entity::find_by_id(code.clone())
            .one(&txn)
            .await?
            .is_some()
        {
            return Err(StoreError::Duplicate {
                what: "单位",
                key: code,
            });
        }
        if let Some(parent) = &new.parent
            && unit::Entity::find_by_id(parent.clone())
                .one(&txn)
                .await?
                .is_none()
        {
            return Err(StoreError::Invalid {
                field: "parent".into(),
                message: format!("上级单位 {parent} 不存在"),
            });
        }
        let model = unit::ActiveModel {
            code: Set(code),
            name: Set(name.to_owned()),
            parent_code: Set(new.parent.clone()),
            email: Set(email),
            created_at: Set(now),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(model)
    }

    /// Adds a user with an argon2id hash of the password.
    pub async fn add_user(
        &self,
        new: &NewUser,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<user::Model> {
        let username = checked_code("username", &new.username)?;
        if !Role::USER_ROLES.contains(&new.role) {
            return Err(StoreError::Invalid {
                field: "role".into(),
                message: format!("角色 {} 不能用于用户账号", new.role),
            });
        }
        if matches!(
            new.role,
            Role::UnitStaff | Role::CenterStaff | Role::Supervisor
        ) && new.unit.is_none()
        {
            return Err(StoreError::Invalid {
                field: "unit".into(),
                message: format!("角色 {} 必须属于一个单位（--unit）", new.role),
            });
        }
        if password.chars().count() < 8 {
            return Err(StoreError::Invalid {
                field: "password".into(),
                message: "密码至少 8 个字符".into(),
            });
        }
        let email = new
            .email
            .as_deref()
            .map(|e| checked_email("email", e))
            .transpose()?;
        let hash = Argon2::default()
            .hash_password(password.as_bytes())
            .map_err(|e| StoreError::Password(e.to_string()))?
            .to_string();
        let txn = self.begin_write().await?;
        if let Some(unit) = &new.unit
            && unit::Entity::find_by_id(unit.clone())
                .one(&txn)
                .await?
                .is_none()
        {
            return Err(StoreError::Invalid {
                field: "unit".into(),
                message: format!("单位 {unit} 不存在"),
            });
        }
        if user::Entity::find()
            .filter(user::Column::Username.eq(&username))
            .one(&txn)
            .await?
            .is_some()
        {
            return Err(StoreError::Duplicate {
                what: "用户",
                key: username,
            });
        }
        let model = user::ActiveModel {
            id: Set(Uuid::now_v7()),
            username: Set(username),
            role: Set(new.role.as_str().to_owned()),
            unit_code: Set(new.unit.clone()),
            email: Set(email),
            password_hash: Set(hash),
            disabled: Set(false),
            created_at: Set(now),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(model)
    }

    /// The user of this name.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<user::Model>> {
        Ok(user::Entity::find()
            .filter(user::Column::Username.eq(username))
            .one(&self.db)
            .await?)
    }

    /// The unit of this code.
    pub async fn unit(&self, code: &str) -> Result<Option<unit::Model>> {
        Ok(unit::Entity::find_by_id(code.to_owned())
            .one(&self.db)
            .await?)
    }

    /// Every unit.
    pub async fn units(&self) -> Result<Vec<unit::Model>> {
        Ok(unit::Entity::find().all(&self.db).await?)
    }
}

/// Whether `password` matches an argon2 PHC hash made by [`Store::add_user`].
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// The unit and all its ancestors, nearest first.
pub(crate) async fn self_and_ancestors(
    db: &impl ConnectionTrait,
    code: &str,
) -> Result<Vec<String>> {
    let parents: HashMap<String, Option<String>> = unit::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.code, u.parent_code))
        .collect();
    let mut chain = Vec::new();
    let mut seen = BTreeSet::new();
    let mut current = Some(code.to_owned());
    while let Some(code) = current {
        if !seen.insert(code.clone()) {
            break;
        }
        current = parents.get(&code).cloned().flatten();
        if parents.contains_key(&code) {
            chain.push(code);
        }
    }
    Ok(chain)
}

fn checked_code(field: &str, value: &str) -> Result<String> {
    let v = value.trim();
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(StoreError::Invalid {
            field: field.into(),
            message: format!("“{v}”无效：只能用字母、数字、-、_、.，最长 64 个字符"),
        })
    }
}

fn checked_email(field: &str, value: &str) -> Result<String> {
    let v = value.trim();
    let ok = v.len() <= 254
        && v.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !v.chars().any(char::is_whitespace);
    if ok {
        Ok(v.to_owned())
    } else {
        Err(StoreError::Invalid {
            field: field.into(),
            message: format!("“{v}”不是有效的邮箱地址"),
        })
    }
}
