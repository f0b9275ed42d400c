//! The organization as one tree in memory: units, their parents and regions, the outside codes
//! mapped onto them, and the mail addresses of their users. Scope, the home units of a case, the
//! ancestors a notice climbs to and who it goes to are computed from it, never by reading the unit,
//! alias or user tables per request.
//!
//! The tree is cached per store and checked against `org_revision`, one row the database's triggers
//! bump with every change to `units` or `unit_aliases` (migration 9) and to who a user is for the
//! notices (migration 11): reading that row is all a request pays while the organization stays as it
//! is, and a unit or user added by another instance, or at the SQL prompt, is seen by the next
//! request here.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use sea_orm::{ConnectionTrait, DatabaseTransaction, EntityTrait, QueryOrder, Statement};

use crate::entity::{unit, unit_alias};
use crate::outbox::Directory;
use crate::scope::Reach;
use crate::{Result, Store, StoreError};

/// The organization as the database held it at one revision.
#[derive(Debug)]
pub(crate) struct OrgTree {
    revision: i64,
    /// Every registered unit, by code.
    units: HashMap<String, unit::Model>,
    /// Registered codes in code order, for answers that list units.
    codes: Vec<String>,
    children: HashMap<String, Vec<String>>,
    /// Outside code → the registered unit it is mapped onto.
    aliases: HashMap<String, String>,
    known: Arc<BTreeSet<String>>,
    /// Each unit's reach, computed once per revision.
    reaches: Mutex<HashMap<String, Reach>>,
    /// The addresses of the units' users.
    people: Directory,
}

impl OrgTree {
    fn new(
        revision: i64,
        units: Vec<unit::Model>,
        aliases: Vec<unit_alias::Model>,
        people: Directory,
    ) -> Self {
        let mut children: HashMap<String, Vec<String>> = HashMap::new();
        for u in &units {
            if let Some(parent) = &u.parent_code {
                children
                    .entry(parent.clone())
                    .or_default()
                    .push(u.code.clone());
            }
        }
        let mut known: BTreeSet<String> = units.iter().map(|u| u.code.clone()).collect();
        known.extend(aliases.iter().map(|a| a.code.clone()));
        let codes = units.iter().map(|u| u.code.clone()).collect();
        Self {
            revision,
            units: units.into_iter().map(|u| (u.code.clone(), u)).collect(),
            codes,
            children,
            aliases: aliases.into_iter().map(|a| (a.code, a.unit_code)).collect(),
            known: Arc::new(known),
            reaches: Mutex::new(HashMap::new()),
            people,
        }
    }

    /// The mail addresses of the units' users, by role and unit.
    pub(crate) fn people(&self) -> &Directory {
        &self.people
    }

    /// A registered unit.
    pub(crate) fn unit(&self, code: &str) -> Option<&unit::Model> {
        self.units.get(code)
    }

    /// A unit's name, or its code when it is not registered.
    pub(crate) fn name_of(&self, code: &str) -> String {
        self.unit(code)
            .map_or_else(|| code.to_owned(), |u| u.name.clone())
    }

    fn parent(&self, code: &str) -> Option<&str> {
        self.units.get(code)?.parent_code.as_deref()
    }

    fn region(&self, code: &str) -> Option<&str> {
        self.units.get(code)?.region_code.as_deref()
    }

    fn children(&self, code: &str) -> impl Iterator<Item = &str> {
        self.children
            .get(code)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// A unit's subtree (docs/DOMAIN.md, "Scope"): its units and the outside codes mapped onto them, the
    /// units whose ratings come to one of its service centers, and the regions those centers answer
    /// for.
    pub(crate) fn reach(&self, root: &str) -> Reach {
        if let Some(reach) = self.reaches.lock().ok().and_then(|r| r.get(root).cloned()) {
            return reach;
        }
        let reach = self.compute_reach(root);
        if let Ok(mut reaches) = self.reaches.lock() {
            reaches.insert(root.to_owned(), reach.clone());
        }
        reach
    }

    fn compute_reach(&self, root: &str) -> Reach {
        let mut reach = Reach::default();
        let mut stack = vec![root];
        while let Some(code) = stack.pop() {
            if reach.units.insert(code.to_owned()) {
                reach.regions.extend(self.region(code).map(str::to_owned));
                stack.extend(self.children(code));
            }
        }
        // Whether a unit's ratings come to a service center in reach: the unit itself when it is a
        // center, else the centers among the children of the nearest unit up the tree (itself first)
        // that has any.
        let routed_here = |code: &str| -> bool {
            let mut seen = BTreeSet::new();
            let mut at = Some(code);
            while let Some(a) = at {
                if !seen.insert(a) {
                    return false;
                }
                if self.region(a).is_some() {
                    return reach.units.contains(a);
                }
                let mut centers = self
                    .children(a)
                    .filter(|c| self.region(c).is_some())
                    .peekable();
                if centers.peek().is_some() {
                    return centers.any(|c| reach.units.contains(c));
                }
                at = self.parent(a);
            }
            false
        };
        let routed: Vec<String> = self
            .codes
            .iter()
            .filter(|code| routed_here(code))
            .cloned()
            .collect();
        reach.origins = reach.units.clone();
        reach.origins.extend(routed);
        for (alias, unit) in &self.aliases {
            if reach.units.contains(unit) {
                reach.units.insert(alias.clone());
            }
            if reach.origins.contains(unit) {
                reach.origins.insert(alias.clone());
            }
        }
        reach.known = Arc::clone(&self.known);
        reach
    }

    /// The unit and its ancestors, nearest first; an unknown code gives nothing, a loop is walked once.
    pub(crate) fn self_and_ancestors(&self, code: &str) -> Vec<String> {
        let mut chain = Vec::new();
        let mut seen = BTreeSet::new();
        let mut current = Some(code);
        while let Some(code) = current {
            if !seen.insert(code) || !self.units.contains_key(code) {
                break;
            }
            chain.push(code.to_owned());
            current = self.parent(code);
        }
        chain
    }

    /// The service center (政务服务中心) that owns a case of `origin`'s rating until it is transferred:
    /// the origin unit (or the unit its code is mapped onto) when it is a center, else the first
    /// center among the children of the nearest unit up the tree that has any (the center its
    /// ratings are routed to); for an origin the organization does not know, the first center that
    /// answers for `region`. `None` when no center is registered there.
    pub(crate) fn center_of(&self, origin: &str, region: Option<&str>) -> Option<&str> {
        let origin = self.aliases.get(origin).map_or(origin, String::as_str);
        if !self.units.contains_key(origin) {
            let region = region?;
            return self
                .codes
                .iter()
                .map(String::as_str)
                .find(|c| self.region(c) == Some(region));
        }
        for code in self.self_and_ancestors(origin) {
            if self.region(&code).is_some() {
                return self.units.get_key_value(&code).map(|(k, _)| k.as_str());
            }
            if let Some(first) = self
                .children(&code)
                .filter(|c| self.region(c).is_some())
                .min()
            {
                return Some(first);
            }
        }
        None
    }

    /// The code a case of `origin`'s rating is kept against until it is transferred: its
    /// [center](Self::center_of), or the origin itself where the organization has none for it.
    pub(crate) fn center_code<'a>(&'a self, origin: &'a str, region: Option<&str>) -> &'a str {
        self.center_of(origin, region).unwrap_or(origin)
    }

    /// The units a case belongs to, nearest first: its origin unit (or the unit its code is mapped
    /// onto) and that unit's ancestors; while the origin is unknown, the units answering for the
    /// case's region and their ancestors.
    pub(crate) fn home_units(&self, origin: &str, region: Option<&str>) -> Vec<String> {
        let origin = self.aliases.get(origin).map_or(origin, String::as_str);
        let mut chain = self.self_and_ancestors(origin);
        if chain.is_empty()
            && let Some(region) = region
        {
            for center in self.codes.iter().filter(|c| self.region(c) == Some(region)) {
                for code in self.self_and_ancestors(center) {
                    if !chain.contains(&code) {
                        chain.push(code);
                    }
                }
            }
        }
        chain
    }
}

/// A store's copy of the tree.
#[derive(Debug, Default)]
pub(crate) struct OrgCache {
    current: RwLock<Option<Arc<OrgTree>>>,
}

impl OrgCache {
    fn at(&self, revision: i64) -> Option<Arc<OrgTree>> {
        self.current
            .read()
            .ok()
            .and_then(|c| c.clone())
            .filter(|t| t.revision == revision)
    }

    fn keep(&self, tree: &Arc<OrgTree>) {
        if let Ok(mut current) = self.current.write() {
            *current = Some(Arc::clone(tree));
        }
    }
}

impl Store {
    /// The organization as committed now: the cached tree while the revision is unchanged.
    pub(crate) async fn org(&self) -> Result<Arc<OrgTree>> {
        let revision = revision(&self.db).await?;
        if let Some(tree) = self.org.at(revision) {
            return Ok(tree);
        }
        let tree = load(&self.db, revision).await?;
        self.org.keep(&tree);
        Ok(tree)
    }

    /// The organization at `revision`, read a moment ago with something else (a session): the
    /// cached tree when it is at that revision, else the tree as committed now.
    pub(crate) async fn org_at(&self, revision: i64) -> Result<Arc<OrgTree>> {
        match self.org.at(revision) {
            Some(tree) => Ok(tree),
            None => self.org().await,
        }
    }

    /// The organization as transaction `txn` sees it, for a transaction that has not changed units
    /// or mapped codes itself (every action): what it reads is committed, so the tree is cached. It is
    /// read through `txn`, never through a second connection of the pool, which a transaction holding
    /// the pool's last connection would wait for.
    pub(crate) async fn org_in(&self, txn: &DatabaseTransaction) -> Result<Arc<OrgTree>> {
        let revision = revision(txn).await?;
        if let Some(tree) = self.org.at(revision) {
            return Ok(tree);
        }
        let tree = load(txn, revision).await?;
        self.org.keep(&tree);
        Ok(tree)
    }

    /// The organization with what `txn` itself changed (a plan import that created units): read
    /// through `txn` and never cached, since the transaction may yet roll back.
    pub(crate) async fn org_with_own_changes(
        &self,
        txn: &DatabaseTransaction,
    ) -> Result<Arc<OrgTree>> {
        let revision = revision(txn).await?;
        match self.org.at(revision) {
            Some(tree) => Ok(tree),
            None => load(txn, revision).await,
        }
    }
}

/// Reads the tree through `db`. The revision is read first: a change committed in between makes the
/// tree newer than its revision says (and the next request reads it again), never older.
async fn load(db: &impl ConnectionTrait, revision: i64) -> Result<Arc<OrgTree>> {
    let units = unit::Entity::find()
        .order_by_asc(unit::Column::Code)
        .all(db)
        .await?;
    let aliases = unit_alias::Entity::find()
        .order_by_asc(unit_alias::Column::Code)
        .all(db)
        .await?;
    let people = Directory::read(db).await?;
    Ok(Arc::new(OrgTree::new(revision, units, aliases, people)))
}

/// The query of the organization's revision (also a scalar subquery of a statement that reads
/// something else with it).
pub(crate) const REVISION_QUERY: &str = "SELECT revision FROM org_revision WHERE id = 1";

async fn revision(db: &impl ConnectionTrait) -> Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            REVISION_QUERY,
        ))
        .await?
        .ok_or_else(|| StoreError::Corrupt("org_revision has no row".into()))?;
    Ok(row.try_get::<i64>("", "revision")?)
}
