//! Who acts (角色).

use std::fmt;
use std::str::FromStr;

/// The role of whoever takes an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// 系统管理员: units, users, calendars, tokens.
    Admin,
    /// 督查 / 政务服务办: decides appeals, extends, audits, gets escalations.
    Supervisor,
    /// 政务服务中心工作人员: accepts, transfers, return visits.
    CenterStaff,
    /// 承办单位工作人员: rectifies and appeals the cases of their own unit.
    UnitStaff,
    /// 只读: sees, never acts.
    Viewer,
    /// 评价人: answers the review through a one-time link.
    Rater,
    /// 系统调度: the scheduler firing timers.
    Scheduler,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::Supervisor,
        Role::CenterStaff,
        Role::UnitStaff,
        Role::Viewer,
        Role::Rater,
        Role::Scheduler,
    ];

    /// The roles a user account can have (the others are the rater's link and the scheduler).
    pub const USER_ROLES: [Role; 5] = [
        Role::Admin,
        Role::Supervisor,
        Role::CenterStaff,
        Role::UnitStaff,
        Role::Viewer,
    ];

    /// The stable identifier used in files, the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::CenterStaff => "center_staff",
            Role::UnitStaff => "unit_staff",
            Role::Viewer => "viewer",
            Role::Rater => "rater",
            Role::Scheduler => "scheduler",
        }
    }

    /// The Chinese label.
    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "系统管理员",
            Role::Supervisor => "督查人员",
            Role::CenterStaff => "政务服务中心工作人员",
            Role::UnitStaff => "承办单位工作人员",
            Role::Viewer => "只读用户",
            Role::Rater => "评价人",
            Role::Scheduler => "系统调度",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown role `{0}` (known: admin, supervisor, center_staff, unit_staff, viewer, rater, scheduler)"
)]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}
