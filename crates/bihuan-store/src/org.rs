//! The organization: units (a tree) and user accounts.

use argon2::Argon2;
use argon2::password_hash::{PasswordVerifier, phc::PasswordHash};
use bihuan_core::Role;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use crate::code::Code;
use crate::entity::{unit, unit_alias, user};
use crate::{Result, Store, StoreError};

/// A unit to add.
#[derive(Debug, Clone, Default)]
pub struct NewUnit {
    /// Its code, e.g. `shaba-social`.
    pub code: String,
    /// Its Chinese name.
    pub name: String,
    /// The code of its parent unit.
    pub parent: Option<String>,
    /// Its mail address.
    pub email: Option<String>,
    /// The 行政区划 it answers for, if it is a service center: negative ratings naming a unit the
    /// organization does not have wait here.
    pub region: Option<String>,
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
    /// The mobile number their daily digest also goes to by SMS; `None`: no SMS.
    pub sms_phone: Option<String>,
}

impl Store {
    /// Adds a unit under its parent.
    pub async fn add_unit(&self, new: &NewUnit, now: DateTime<Utc>) -> Result<unit::Model> {
        let code = checked_code("code", &new.code)?;
        let name = crate::access::bounded_text(
            "name",
            &new.name,
            bihuan_core::plan::UNIT_NAME_MAX_CHARS,
            "单位名称",
        )?;
        let name = name.as_str();
        let email = new
            .email
            .as_deref()
            .map(|e| checked_email("email", e))
            .transpose()?;
        let region = new.region.as_deref().map(checked_region).transpose()?;
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
            region_code: Set(region),
            created_at: Set(now),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(model)
    }

    /// Maps a unit code that ratings send (and the organization does not have) onto a registered unit:
    /// from now on its ratings and cases belong to that unit's organization.
    pub async fn map_unit_code(
        &self,
        code: &str,
        unit: &str,
        mapped_by: &str,
        now: DateTime<Utc>,
    ) -> Result<unit_alias::Model> {
        let code = code.trim();
        if code.is_empty() || code.chars().count() > 64 {
            return Err(StoreError::Invalid {
                field: "code".into(),
                message: "单位编码不能为空，最长 64 个字符".into(),
            });
        }
        let txn = self.begin_write().await?;
        if unit::Entity::find_by_id(unit.to_owned())
            .one(&txn)
            .await?
            .is_none()
        {
            return Err(StoreError::Invalid {
                field: "unit".into(),
                message: format!("单位 {unit} 不存在"),
            });
        }
        if unit::Entity::find_by_id(code.to_owned())
            .one(&txn)
            .await?
            .is_some()
        {
            return Err(StoreError::Invalid {
                field: "code".into(),
                message: format!("{code} 已是登记的单位，无需映射"),
            });
        }
        if unit_alias::Entity::find_by_id(code.to_owned())
            .one(&txn)
            .await?
            .is_some()
        {
            return Err(StoreError::Duplicate {
                what: "单位编码映射",
                key: code.to_owned(),
            });
        }
        let model = unit_alias::ActiveModel {
            code: Set(code.to_owned()),
            unit_code: Set(unit.to_owned()),
            mapped_by: Set(mapped_by.to_owned()),
            created_at: Set(now),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(model)
    }

    /// Every mapped unit code.
    pub async fn unit_aliases(&self) -> Result<Vec<unit_alias::Model>> {
        Ok(unit_alias::Entity::find()
            .order_by_asc(unit_alias::Column::Code)
            .all(&self.db)
            .await?)
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
        let email = new
            .email
            .as_deref()
            .map(|e| checked_email("email", e))
            .transpose()?;
        let sms_phone = new.sms_phone.as_deref().map(checked_mobile).transpose()?;
        let hash = crate::access::hash_password(password).await?;
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
            role: Set(Code(new.role)),
            unit_code: Set(new.unit.clone()),
            email: Set(email),
            password_hash: Set(hash),
            disabled: Set(false),
            created_at: Set(now),
            sms_phone: Set(sms_phone),
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

/// A 行政区划代码: 6 to 12 digits.
fn checked_region(value: &str) -> Result<String> {
    let v = value.trim();
    if (6..=12).contains(&v.len()) && v.chars().all(|c| c.is_ascii_digit()) {
        Ok(v.to_owned())
    } else {
        Err(StoreError::Invalid {
            field: "region_code".into(),
            message: format!("“{v}”不是有效的行政区划代码（6 到 12 位数字）"),
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

/// A mainland mobile number for SMS (11 digits starting with 1, `+86` allowed and dropped).
fn checked_mobile(text: &str) -> Result<String> {
    let digits: String = text
        .trim()
        .trim_start_matches("+86")
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .collect();
    let valid =
        digits.len() == 11 && digits.starts_with('1') && digits.bytes().all(|b| b.is_ascii_digit());
    if valid {
        Ok(digits)
    } else {
        Err(StoreError::Invalid {
            field: "sms_phone".into(),
            message: "短信提醒手机号应为 11 位手机号码".into(),
        })
    }
}

/// What a text written for publication (公开答复) must not name: every user's login, disabled ones
/// included (a former staff member's name is no more public than a present one's).
pub(crate) async fn staff_names(db: &impl sea_orm::ConnectionTrait) -> Result<Vec<String>> {
    Ok(user::Entity::find()
        .select_only()
        .column(user::Column::Username)
        .into_tuple::<String>()
        .all(db)
        .await?)
}
