//! A user account (用户).

use bihuan_core::Role;

use crate::code::Code;
use sea_orm::entity::prelude::*;

/// One row of `users`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub username: String,
    pub role: Code<Role>,
    pub unit_code: Option<String>,
    pub email: Option<String>,
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: DateTimeUtc,
    /// The mobile number the daily digest of due and overdue 差评工单 also goes to by SMS; `None`:
    /// no SMS.
    pub sms_phone: Option<String>,
}

/// No declared relations: queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
