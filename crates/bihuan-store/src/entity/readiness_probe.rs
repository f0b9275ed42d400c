//! A row `/readyz` writes and deletes again in one transaction, to prove that a write would succeed.

use sea_orm::entity::prelude::*;

/// One row of `readiness_probes` (the table is empty between probes).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "readiness_probes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// A database page's worth of bytes, so the probe needs room for a fresh page.
    pub filler: Vec<u8>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
