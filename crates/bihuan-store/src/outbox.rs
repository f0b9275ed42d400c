//! The outbox (发件箱): every mail is a row written in the transaction of what causes it, then claimed,
//! sent and marked by the sender (`bihuan-notify`), with retries and a dead end admins can see.
//!
//! Statuses: `pending` (to send), `sent`, `dead` (given up, with the last error); and for reminders
//! that the daily digest delivers, `digest` (listed in each day's digest while it holds) and `lapsed`
//! (the case moved on).

use std::collections::BTreeMap;

use bihuan_core::mail::{self, CaseFacts, CaseNotice, ReviewInvitation};
use bihuan_core::workflow::Audience;
use bihuan_core::{Engine, Letter, Role, WorkflowDefinition};
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::Value;
use uuid::Uuid;

use crate::code::{Code, StoredCode};
use crate::entity::{case, event, outbox, rating, review_link, user};
use crate::org_tree::OrgTree;
use crate::pipeline::{Ctx, Step};
use crate::{Result, Store, StoreError};

/// Where an outbox row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxStatus {
    /// To be sent.
    Pending,
    /// Sent.
    Sent,
    /// Given up after the last retry, or refused for good by the mail server.
    Dead,
    /// A reminder delivered by the daily digest while its case stays due soon or overdue.
    Digest,
    /// A digest reminder whose case moved on.
    Lapsed,
}

impl OutboxStatus {
    /// Every status, in the order a row goes through them.
    pub const ALL: [OutboxStatus; 5] = [
        OutboxStatus::Pending,
        OutboxStatus::Sent,
        OutboxStatus::Dead,
        OutboxStatus::Digest,
        OutboxStatus::Lapsed,
    ];

    /// The stored and API identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Dead => "dead",
            OutboxStatus::Digest => "digest",
            OutboxStatus::Lapsed => "lapsed",
        }
    }

    /// The status of an API identifier.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl StoredCode for OutboxStatus {
    const WHAT: &'static str = "outbox status";

    fn code(self) -> &'static str {
        self.as_str()
    }

    fn from_code(code: &str) -> Option<Self> {
        Self::parse(code)
    }
}

/// How an outbox row goes out: one outbox, a sender with a plug-in per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxChannel {
    /// Mail (SMTP, or `.eml` files).
    Mail,
    /// SMS through the province's gateway (`BIHUAN_SMS_URL`), or files.
    Sms,
    /// 数据回传: a step of a 差评's handling pushed to the provincial platform (`BIHUAN_UPSTREAM_URL`).
    Upstream,
}

impl OutboxChannel {
    /// Every channel.
    pub const ALL: [OutboxChannel; 3] = [
        OutboxChannel::Mail,
        OutboxChannel::Sms,
        OutboxChannel::Upstream,
    ];

    /// The stored and API identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxChannel::Mail => "mail",
            OutboxChannel::Sms => "sms",
            OutboxChannel::Upstream => "upstream",
        }
    }
}

impl StoredCode for OutboxChannel {
    const WHAT: &'static str = "outbox channel";

    fn code(self) -> &'static str {
        self.as_str()
    }

    fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

/// What a channel other than mail sends, to write into the outbox.
#[derive(Debug, Clone)]
pub(crate) struct NewMessage {
    pub channel: OutboxChannel,
    pub kind: String,
    pub case_id: Option<Uuid>,
    pub audience: String,
    /// Who it is for, as admins may see it (a phone number masked; empty for a push).
    pub shown_to: Vec<String>,
    /// A line for the outbox list (no personal data).
    pub summary: String,
    /// What the channel sends.
    pub payload: Value,
    /// One row per key, however many passes or processes try to create it.
    pub unique_key: String,
}

/// Writes a message unless its unique key is already there; true when written.
pub(crate) async fn insert_message(
    txn: &impl ConnectionTrait,
    message: NewMessage,
    now: DateTime<Utc>,
) -> Result<bool> {
    let row = outbox::ActiveModel {
        kind: Set(message.kind),
        case_id: Set(message.case_id),
        audience: Set(message.audience),
        recipients: Set(Value::from(message.shown_to)),
        subject: Set(message.summary),
        body: Set(String::new()),
        html: Set(None),
        unique_key: Set(message.unique_key),
        status: Set(Code(OutboxStatus::Pending)),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
        channel: Set(Code(message.channel)),
        payload: Set(Some(message.payload.to_string())),
        ..Default::default()
    };
    let inserted = outbox::Entity::insert(row)
        .on_conflict_do_nothing_on([outbox::Column::UniqueKey])
        .exec_without_returning(txn)
        .await?;
    Ok(matches!(inserted, sea_orm::TryInsertResult::Inserted(1)))
}

/// A mail to write into the outbox.
#[derive(Debug, Clone)]
pub(crate) struct NewMail {
    pub kind: String,
    pub case_id: Option<Uuid>,
    pub audience: String,
    pub recipients: Vec<String>,
    pub letter: Letter,
    pub unique_key: String,
    pub status: OutboxStatus,
    /// Not before this time (a reminder waiting for office hours); `None`: at once.
    pub send_at: Option<DateTime<Utc>>,
}

/// Writes a mail unless its unique key is already there; true when written. A mail without recipients
/// says why in its error (and a pending one is written dead), so admins see that nobody could be told.
pub(crate) async fn insert_mail(
    txn: &impl ConnectionTrait,
    mail: NewMail,
    now: DateTime<Utc>,
) -> Result<bool> {
    let inserted = outbox::Entity::insert(row_of(mail, now))
        .on_conflict_do_nothing_on([outbox::Column::UniqueKey])
        .exec_without_returning(txn)
        .await?;
    Ok(matches!(inserted, sea_orm::TryInsertResult::Inserted(1)))
}

/// [`insert_mail`] for many mails, a few hundred rows a statement.
pub(crate) async fn insert_mails(
    txn: &impl ConnectionTrait,
    mails: Vec<NewMail>,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut rows = mails.into_iter().map(|mail| row_of(mail, now)).peekable();
    while rows.peek().is_some() {
        outbox::Entity::insert_many(rows.by_ref().take(200))
            .on_conflict_do_nothing_on([outbox::Column::UniqueKey])
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

fn row_of(mail: NewMail, now: DateTime<Utc>) -> outbox::ActiveModel {
    let nobody = mail.recipients.is_empty();
    outbox::ActiveModel {
        kind: Set(mail.kind),
        case_id: Set(mail.case_id),
        audience: Set(mail.audience),
        recipients: Set(Value::from(mail.recipients)),
        subject: Set(mail.letter.subject),
        body: Set(mail.letter.text),
        html: Set(mail.letter.html),
        unique_key: Set(mail.unique_key),
        status: Set(Code(if nobody && mail.status == OutboxStatus::Pending {
            OutboxStatus::Dead
        } else {
            mail.status
        })),
        attempts: Set(0),
        next_attempt_at: Set(mail.send_at.map_or(now, |at| at.max(now))),
        last_error: Set(nobody.then(|| {
            "没有收件人：相关单位和人员都没有登记邮箱（no recipient has an email address）"
                .to_owned()
        })),
        created_at: Set(now),
        sent_at: Set(None),
        channel: Set(Code(OutboxChannel::Mail)),
        payload: Set(None),
        ..Default::default()
    }
}

/// Writes the notifications of an action, in its transaction. The unique key (case, event, kind,
/// audience) makes the write idempotent.
pub(crate) async fn queue_notifications(
    ctx: &Ctx<'_>,
    def: &WorkflowDefinition,
    case: &case::Model,
    rating: &rating::Model,
    events: &[event::Model],
    step: &Step,
) -> Result<()> {
    let (txn, engine) = (ctx.txn, ctx.engine);
    let (decision, seq, now) = (&step.decision, step.seq, step.now);
    let people = ctx.org.people();
    let action_label = def
        .action(&decision.action)
        .map_or(decision.action.as_str(), |a| a.label.as_str());
    for note in &decision.notifications {
        let unique_key = format!(
            "case:{}:{seq}:{}:{}",
            case.id,
            note.kind,
            note.audience.as_str()
        );
        let (recipients, letter) = if note.audience == Audience::Rater {
            // By mail when the rater gave an address, else by SMS when they gave a phone (most
            // do): one message a rater and step.
            let (email, phone) = (rating.rater_email.clone(), rating.rater_phone.clone());
            if email.is_none() && phone.is_none() {
                continue;
            }
            let handled = Handled::last_of(def, events)?;
            let invitation = review_invitation(ctx, case, rating, &handled, seq, now)
                .await?
                .with_reply(
                    def.action(&decision.action)
                        .and_then(|a| a.public_text(&decision.fields))
                        .map(str::to_owned),
                );
            match (email, phone) {
                (Some(address), _) => (vec![address], render(engine, mail::REVIEW, &invitation)?),
                (None, Some(phone)) => {
                    let (payload, shown_to) = sms_to(engine, &phone, mail::REVIEW, &invitation)?;
                    insert_message(
                        txn,
                        NewMessage {
                            channel: OutboxChannel::Sms,
                            kind: note.kind.clone(),
                            case_id: Some(case.id),
                            audience: note.audience.as_str().to_owned(),
                            shown_to,
                            summary: format!("评价邀请短信（{}）", rating.project_no),
                            payload,
                            unique_key: format!("sms:{unique_key}"),
                        },
                        now,
                    )
                    .await?;
                    continue;
                }
                (None, None) => continue,
            }
        } else {
            let notice = CaseNotice {
                kind: note.kind.clone(),
                action: Some(action_label.to_owned()),
                case: case_facts(ctx.org, engine, def, case, rating, now),
            };
            (
                recipients(people, ctx.org, note.audience, case, rating),
                render(engine, mail::CASE, &notice)?,
            )
        };
        insert_mail(
            txn,
            NewMail {
                kind: note.kind.clone(),
                case_id: Some(case.id),
                audience: note.audience.as_str().to_owned(),
                recipients,
                letter,
                unique_key,
                status: OutboxStatus::Pending,
                send_at: None,
            },
            now,
        )
        .await?;
    }
    Ok(())
}

/// Writes the push of an action to the provincial platform (数据回传), in its transaction: one row
/// per event (its key `{case}:{seq}` is the push's `Idempotency-Key`), none for an action the
/// engine's mapping does not name.
pub(crate) async fn queue_push(
    ctx: &Ctx<'_>,
    case: &case::Model,
    rating: &rating::Model,
    step: &Step,
) -> Result<()> {
    let Some(map) = ctx.engine.upstream() else {
        return Ok(());
    };
    let case_id = case.id.to_string();
    let facts = bihuan_core::upstream::PushFacts {
        project_no: &rating.project_no,
        source: &rating.source,
        source_id: &rating.source_id,
        case_id: &case_id,
        action: &step.decision.action,
        at: step.now,
        unit: case.unit_code.as_deref(),
        fields: &step.decision.fields,
    };
    let Some((up, body)) = map.push(&facts) else {
        return Ok(());
    };
    insert_message(
        ctx.txn,
        NewMessage {
            channel: OutboxChannel::Upstream,
            kind: format!("upstream_{}", up.as_str()),
            case_id: Some(case.id),
            audience: "upstream".to_owned(),
            shown_to: Vec::new(),
            summary: format!("数据回传：{}（{}）", up.as_str(), rating.project_no),
            payload: body,
            unique_key: push_key(case.id, step.seq),
        },
        step.now,
    )
    .await?;
    Ok(())
}

/// The key of the push of event `seq` of a case: its outbox row's unique key, `upstream:` and the
/// `Idempotency-Key` the platform sees.
pub fn push_key(case_id: Uuid, seq: i64) -> String {
    format!("upstream:{case_id}:{seq}")
}

/// The `Idempotency-Key` of a push, from its row's unique key.
pub fn idempotency_key(row: &outbox::Model) -> &str {
    row.unique_key
        .strip_prefix("upstream:")
        .unwrap_or(&row.unique_key)
}

/// Creates the rater's one-time link for the review the case just entered: what the invitation (by
/// mail or SMS) says. The link expires with the review's time limit.
async fn review_invitation(
    ctx: &Ctx<'_>,
    case: &case::Model,
    rating: &rating::Model,
    handled: &Handled,
    seq: i64,
    now: DateTime<Utc>,
) -> Result<ReviewInvitation> {
    let token = crate::access::new_token("");
    let expires_at = case.deadline.unwrap_or(now + Duration::days(7));
    review_link::ActiveModel {
        token_hash: Set(crate::access::token_hash(&token)),
        case_id: Set(case.id),
        event_seq: Set(seq),
        expires_at: Set(expires_at),
        used_at: Set(None),
        created_at: Set(now),
    }
    .insert(ctx.txn)
    .await?;
    let engine = ctx.engine;
    let invitation = ReviewInvitation {
        service: rating.service_name.clone(),
        unit: ctx
            .org
            .name_of(case.unit_code.as_deref().unwrap_or(&case.origin_unit)),
        project_no: rating.project_no.clone(),
        link: engine.letters().link(&format!("/r/{token}")),
        expires: mail::chinese_deadline(engine.calendar(), expires_at),
        finding: handled.finding.clone(),
        outcome: handled.outcome.clone(),
        reply: None,
        reply_brief: None,
    };
    Ok(invitation)
}

/// What the last rectification found and did (the fields `finding` and `outcome` of the last event
/// marked rectified), for the rater's invitation to say what was done.
struct Handled {
    finding: Option<String>,
    outcome: Option<String>,
}

impl Handled {
    fn last_of(def: &WorkflowDefinition, events: &[event::Model]) -> Result<Self> {
        let fields = crate::cases::last_rectification(def, events)?.unwrap_or_default();
        let text = |name: &str| fields.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(Self {
            finding: text("finding"),
            outcome: text("outcome"),
        })
    }
}

pub(crate) fn render(
    engine: &Engine,
    template: &str,
    facts: &impl serde::Serialize,
) -> Result<Letter> {
    engine
        .letters()
        .render(template, facts)
        .map_err(unrenderable)
}

/// An SMS to `phone` in the words of `template`'s `sms` block: what the channel sends, and who it is
/// for as admins see it (the number masked).
pub(crate) fn sms_to(
    engine: &Engine,
    phone: &str,
    template: &str,
    facts: &impl serde::Serialize,
) -> Result<(Value, Vec<String>)> {
    let text = engine
        .letters()
        .render_sms(template, facts)
        .map_err(unrenderable)?;
    Ok((
        serde_json::json!({ "to": phone, "text": text }),
        vec![bihuan_core::rating::mask_phone(phone)],
    ))
}

/// A template that does not render: the loaded mail files are wrong.
pub(crate) fn unrenderable(e: bihuan_core::mail::MailError) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

pub(crate) async fn rating_of(
    db: &impl ConnectionTrait,
    case: &case::Model,
) -> Result<rating::Model> {
    rating::Entity::find_by_id(case.rating_id)
        .one(db)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("case {} has no rating", case.id)))
}

/// What a mail says about a case as of `now`.
pub(crate) fn case_facts(
    org: &OrgTree,
    engine: &Engine,
    def: &WorkflowDefinition,
    case: &case::Model,
    rating: &rating::Model,
    now: DateTime<Utc>,
) -> CaseFacts {
    let unit = match &case.unit_code {
        Some(code) => org.name_of(code),
        None => format!("{}（待转办）", org.name_of(&case.origin_unit)),
    };
    facts_with_unit(engine, def, case, rating, unit, now)
}

/// [`case_facts`] with the unit's name already known.
fn facts_with_unit(
    engine: &Engine,
    def: &WorkflowDefinition,
    case: &case::Model,
    rating: &rating::Model,
    unit: String,
    now: DateTime<Utc>,
) -> CaseFacts {
    let cal = engine.calendar();
    let overall = crate::cases::overall_of(case).running().map(|d| d.at);
    let scheduled = crate::cases::scheduled_of(case).and_then(|s| s.open());
    CaseFacts {
        case_id: case.id.to_string(),
        project_no: rating.project_no.clone(),
        service: rating.service_name.clone(),
        unit,
        state: def
            .state(&case.state)
            .map_or_else(|| case.state.clone(), |s| s.label.clone()),
        deadline: case.deadline.map(|d| mail::chinese_deadline(cal, d)),
        working_days: case
            .deadline
            .map(|d| bihuan_core::reminder::working_days_to(cal, now, d)),
        overall_deadline: overall.map(|d| mail::chinese_deadline(cal, d)),
        overall_working_days: overall.map(|d| bihuan_core::reminder::working_days_to(cal, now, d)),
        scheduled_due: scheduled.map(|d| mail::chinese_deadline(cal, d)),
        scheduled_working_days: scheduled
            .map(|d| bihuan_core::reminder::working_days_to(cal, now, d)),
        link: engine.letters().link(&format!("/cases/{}", case.id)),
    }
}

/// The mail addresses of the enabled users of every unit, by role and unit: read with the
/// organization tree and kept with it (a change to who gets notices bumps its revision), then
/// looked up.
#[derive(Debug, Default)]
pub(crate) struct Directory(BTreeMap<(Role, String), Vec<String>>);

impl Directory {
    /// The addresses of the enabled users of every unit.
    pub(crate) async fn read(db: &impl ConnectionTrait) -> Result<Self> {
        let users: Vec<(Code<Role>, String, String)> = user::Entity::find()
            .select_only()
            .columns([
                user::Column::Role,
                user::Column::UnitCode,
                user::Column::Email,
            ])
            .filter(user::Column::UnitCode.is_not_null())
            .filter(user::Column::Disabled.eq(false))
            .filter(user::Column::Email.is_not_null())
            .order_by_asc(user::Column::Username)
            .into_tuple()
            .all(db)
            .await?;
        let mut by_role_unit: BTreeMap<(Role, String), Vec<String>> = BTreeMap::new();
        for (role, unit, email) in users {
            by_role_unit.entry((*role, unit)).or_default().push(email);
        }
        Ok(Self(by_role_unit))
    }

    /// The addresses of the users of `role` in `units`.
    pub(crate) fn emails(&self, role: Role, units: &[String]) -> Vec<String> {
        units
            .iter()
            .filter_map(|unit| self.0.get(&(role, unit.clone())))
            .flatten()
            .cloned()
            .collect()
    }
}

/// Where a case stands in the organization: whom its notices are for is decided from this.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement<'a> {
    /// The responsible unit, once transferred.
    pub unit: Option<&'a str>,
    /// The unit the rating named.
    pub origin: &'a str,
    /// The 行政区划 it came from.
    pub region: Option<&'a str>,
}

impl<'a> Placement<'a> {
    pub(crate) fn of(case: &'a case::Model) -> Self {
        Self {
            unit: case.unit_code.as_deref(),
            origin: &case.origin_unit,
            region: case.region_code.as_deref(),
        }
    }
}

/// The staff an audience of a case is: their role and units (none for the rater).
pub(crate) fn audience_staff(
    org: &OrgTree,
    audience: Audience,
    at: Placement<'_>,
) -> Option<(Role, Vec<String>)> {
    match audience {
        Audience::ResponsibleUnit => at.unit.map(|code| (Role::UnitStaff, vec![code.to_owned()])),
        Audience::Center => Some((Role::CenterStaff, org.home_units(at.origin, at.region))),
        Audience::Supervisors => Some((Role::Supervisor, supervised_chain(org, at))),
        Audience::Rater => None,
    }
}

/// Who a notification about the case goes to: mail addresses, deduplicated and sorted.
pub(crate) fn recipients(
    people: &Directory,
    org: &OrgTree,
    audience: Audience,
    case: &case::Model,
    rating: &rating::Model,
) -> Vec<String> {
    let mut addresses = Vec::new();
    match audience {
        Audience::ResponsibleUnit => {
            // The unit's own mailbox besides its staff's.
            addresses.extend(
                case.unit_code
                    .as_deref()
                    .and_then(|code| org.unit(code)?.email.clone()),
            );
        }
        Audience::Rater => addresses.extend(rating.rater_email.clone()),
        Audience::Center | Audience::Supervisors => {}
    }
    if let Some((role, units)) = audience_staff(org, audience, Placement::of(case)) {
        addresses.extend(people.emails(role, &units));
    }
    addresses.sort();
    addresses.dedup();
    addresses
}

/// Whom a reminder (due soon, overdue) is for: the responsible unit, or the center while the case
/// waits there.
pub(crate) fn reminder_audience(case: &case::Model) -> Audience {
    if case.unit_code.is_some() {
        Audience::ResponsibleUnit
    } else {
        Audience::Center
    }
}

/// Who a reminder (due soon, overdue) goes to: the addresses of its [`reminder_audience`].
pub(crate) fn reminder_recipients(
    people: &Directory,
    org: &OrgTree,
    case: &case::Model,
    rating: &rating::Model,
) -> Vec<String> {
    recipients(people, org, reminder_audience(case), case, rating)
}

/// Who an escalation (督办) goes to: the supervisors whose unit is an ancestor of the responsible unit
/// (of the center, while the case waits there); the unit's own supervisors only when it has no
/// ancestor with one.
pub(crate) fn escalation_recipients(
    people: &Directory,
    org: &OrgTree,
    case: &case::Model,
) -> Vec<String> {
    let chain = supervised_chain(org, Placement::of(case));
    let own = case.unit_code.as_deref().unwrap_or(&case.origin_unit);
    let ancestors: Vec<String> = chain.iter().filter(|u| *u != own).cloned().collect();
    supervisors_above(people, &ancestors, &chain)
}

/// The supervisors of `above`, or of `own` when none is there; deduplicated and sorted.
pub(crate) fn supervisors_above(
    people: &Directory,
    above: &[String],
    own: &[String],
) -> Vec<String> {
    let mut addresses = people.emails(Role::Supervisor, above);
    if addresses.is_empty() {
        addresses = people.emails(Role::Supervisor, own);
    }
    addresses.sort();
    addresses.dedup();
    addresses
}

/// The responsible unit and its ancestors, or while the case waits at the center, its home units.
fn supervised_chain(org: &OrgTree, at: Placement<'_>) -> Vec<String> {
    match at.unit {
        Some(unit) => org.self_and_ancestors(unit),
        None => org.home_units(at.origin, at.region),
    }
}

pub(crate) async fn lapse_reminders(
    txn: &impl ConnectionTrait,
    case_ids: impl IntoIterator<Item = Uuid>,
) -> Result<()> {
    let case_ids: Vec<Uuid> = case_ids.into_iter().collect();
    for chunk in case_ids.chunks(500) {
        outbox::Entity::update_many()
            .col_expr(
                outbox::Column::Status,
                Expr::value(OutboxStatus::Lapsed.as_str()),
            )
            .filter(outbox::Column::CaseId.is_in(chunk.iter().copied()))
            .filter(outbox::Column::Status.eq(OutboxStatus::Digest.as_str()))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// How the sender retries: exponential backoff from `first_delay`, at most `max_delay` apart, dead
/// after `max_attempts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before a mail is dead.
    pub max_attempts: i32,
    /// The wait after the first failure; each further failure doubles it.
    pub first_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
    /// How long a claimed mail is left to its sender before another may claim it.
    pub lease: Duration,
}

impl Default for RetryPolicy {
    /// 8 attempts over about four hours: 1, 2, 4 … 64 minutes apart.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            first_delay: Duration::minutes(1),
            max_delay: Duration::hours(6),
            lease: Duration::minutes(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `attempts`th failed attempt.
    pub fn delay_after(&self, attempts: i32) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(30);
        self.first_delay
            .checked_mul(1 << doublings)
            .map_or(self.max_delay, |d| d.min(self.max_delay))
    }
}

/// `text` with the token of every rater's link (`/r/TOKEN`) taken out; `None` when it has none. The
/// HTML part writes the slashes as entities (`&#x2f;r&#x2f;TOKEN`, the templates' escaping), so
/// those spellings count too.
pub(crate) fn without_link_tokens(text: &str) -> Option<String> {
    const LINKS: [&str; 4] = ["/r/", "&#x2f;r&#x2f;", "&#x2F;r&#x2F;", "&#47;r&#47;"];
    const KEPT: &str = "（链接已随邮件发出，不再保存）";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some((at, link)) = LINKS
        .iter()
        .filter_map(|link| rest.find(link).map(|at| (at, *link)))
        .min()
    {
        let after = &rest[at + link.len()..];
        let token_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(after.len());
        out.push_str(&rest[..at + link.len()]);
        // Tokens are 64 characters; a shorter run is some other path.
        if token_len >= 32 {
            out.push_str(KEPT);
            changed = true;
        } else {
            out.push_str(&after[..token_len]);
        }
        rest = &after[token_len..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Another attempt is due at this time.
    Retry(DateTime<Utc>),
    /// The mail is dead.
    Dead,
}

impl Store {
    /// Claims up to `limit` pending rows of `channel` that are due: each gets one more attempt counted
    /// and is left to this sender for the policy's lease. On PostgreSQL rows another sender holds are
    /// skipped (`FOR UPDATE SKIP LOCKED`); on SQLite the claim runs under the one write lock.
    pub async fn claim(
        &self,
        channel: OutboxChannel,
        now: DateTime<Utc>,
        limit: u64,
        policy: &RetryPolicy,
    ) -> Result<Vec<outbox::Model>> {
        let txn = self.begin_write().await?;
        let mut query = outbox::Entity::find()
            .filter(outbox::Column::Channel.eq(channel.as_str()))
            .filter(outbox::Column::Status.eq(OutboxStatus::Pending.as_str()))
            .filter(outbox::Column::NextAttemptAt.lte(now));
        if channel == OutboxChannel::Upstream {
            // A case's steps reach the platform in the order they were taken: a push waits while an
            // earlier one of its case is still to be delivered (waiting out a retry, or in another
            // sender's hands). The sender claims again after each page, so a case's backlog still
            // goes in one pass.
            query = query.filter(Expr::cust(
                "NOT EXISTS (SELECT 1 FROM outbox AS earlier WHERE earlier.channel = 'upstream' \
                 AND earlier.case_id = outbox.case_id AND earlier.status = 'pending' \
                 AND earlier.id < outbox.id)",
            ));
        }
        let mut query = query
            .order_by_asc(outbox::Column::NextAttemptAt)
            .order_by_asc(outbox::Column::Id)
            .limit(limit);
        if self.db.get_database_backend() == DatabaseBackend::Postgres {
            query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let mut claimed = query.all(&txn).await?;
        if claimed.is_empty() {
            return Ok(claimed);
        }
        let until = now + policy.lease;
        use sea_orm::sea_query::ExprTrait;
        let leased = outbox::Entity::update_many()
            .col_expr(
                outbox::Column::Attempts,
                Expr::col(outbox::Column::Attempts).add(1),
            )
            .col_expr(outbox::Column::NextAttemptAt, Expr::value(until))
            .filter(outbox::Column::Id.is_in(claimed.iter().map(|m| m.id)))
            .exec(&txn)
            .await?;
        // The rows were read under the write lock (or locked for update): each must take its lease.
        if leased.rows_affected != claimed.len() as u64 {
            return Err(StoreError::Corrupt(format!(
                "claimed {} mails but leased {}",
                claimed.len(),
                leased.rows_affected
            )));
        }
        txn.commit().await?;
        for m in &mut claimed {
            m.attempts += 1;
            m.next_attempt_at = until;
        }
        Ok(claimed)
    }

    /// Marks a claimed mail sent; false when it was no longer this sender's (its lease ran out and
    /// another sender claimed it).
    pub async fn mark_sent(&self, mail: &outbox::Model, now: DateTime<Utc>) -> Result<bool> {
        // A rater's one-time link is the key to their review: once the mail is out, the stored copy
        // keeps the text without it.
        let mut update = outbox::Entity::update_many();
        if let Some(body) = without_link_tokens(&mail.body) {
            update = update.col_expr(outbox::Column::Body, Expr::value(body));
        }
        if let Some(html) = mail.html.as_deref().and_then(without_link_tokens) {
            update = update.col_expr(outbox::Column::Html, Expr::value(html));
        }
        // An SMS with a rater's link keeps its text without it too.
        if let Some(payload) = mail.payload.as_deref().and_then(without_link_tokens) {
            update = update.col_expr(outbox::Column::Payload, Expr::value(payload));
        }
        let done = update
            .col_expr(
                outbox::Column::Status,
                Expr::value(OutboxStatus::Sent.as_str()),
            )
            .col_expr(outbox::Column::SentAt, Expr::value(now))
            .col_expr(
                outbox::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .filter(outbox::Column::Id.eq(mail.id))
            .filter(outbox::Column::Status.eq(OutboxStatus::Pending.as_str()))
            .filter(outbox::Column::Attempts.eq(mail.attempts))
            .exec(self.write_connection())
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Hands claimed mails back untried (the sender stopped early): their attempt is not counted and
    /// they are due again at `at`.
    pub async fn release_mail(&self, mails: &[outbox::Model], at: DateTime<Utc>) -> Result<()> {
        use sea_orm::sea_query::ExprTrait;
        for mail in mails {
            outbox::Entity::update_many()
                .col_expr(
                    outbox::Column::Attempts,
                    Expr::col(outbox::Column::Attempts).sub(1),
                )
                .col_expr(outbox::Column::NextAttemptAt, Expr::value(at))
                .filter(outbox::Column::Id.eq(mail.id))
                .filter(outbox::Column::Status.eq(OutboxStatus::Pending.as_str()))
                .filter(outbox::Column::Attempts.eq(mail.attempts))
                .exec(self.write_connection())
                .await?;
        }
        Ok(())
    }

    /// Records a failed attempt: retried after the policy's backoff, or dead after the last attempt or
    /// when the failure is permanent (the server refused the mail for good).
    pub async fn mark_failed(
        &self,
        mail: &outbox::Model,
        error: &str,
        permanent: bool,
        now: DateTime<Utc>,
        policy: &RetryPolicy,
    ) -> Result<FailureOutcome> {
        let outcome = if permanent || mail.attempts >= policy.max_attempts {
            FailureOutcome::Dead
        } else {
            FailureOutcome::Retry(now + policy.delay_after(mail.attempts))
        };
        let mut update = outbox::Entity::update_many()
            .col_expr(outbox::Column::LastError, Expr::value(error.to_owned()));
        update = match outcome {
            FailureOutcome::Dead => update.col_expr(
                outbox::Column::Status,
                Expr::value(OutboxStatus::Dead.as_str()),
            ),
            FailureOutcome::Retry(at) => {
                update.col_expr(outbox::Column::NextAttemptAt, Expr::value(at))
            }
        };
        update
            .filter(outbox::Column::Id.eq(mail.id))
            .filter(outbox::Column::Status.eq(OutboxStatus::Pending.as_str()))
            .filter(outbox::Column::Attempts.eq(mail.attempts))
            .exec(self.write_connection())
            .await?;
        Ok(outcome)
    }

    /// Gives a mail that was given up on (`dead`) a fresh round of attempts, due now; false when
    /// there is no such dead mail.
    pub async fn retry_mail(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        self.retry_outbox(id, None, now).await
    }

    /// Gives a row that was given up on (`dead`), of `channel` when one is named, a fresh round of
    /// attempts, due now; false when there is no such dead row.
    pub async fn retry_outbox(
        &self,
        id: i64,
        channel: Option<OutboxChannel>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut update = outbox::Entity::update_many();
        if let Some(channel) = channel {
            update = update.filter(outbox::Column::Channel.eq(channel.as_str()));
        }
        let result = update
            .col_expr(
                outbox::Column::Status,
                Expr::value(OutboxStatus::Pending.as_str()),
            )
            .col_expr(outbox::Column::Attempts, Expr::value(0))
            .col_expr(
                outbox::Column::NextAttemptAt,
                Expr::value(crate::clock::truncate_to_micros(now)),
            )
            .filter(outbox::Column::Id.eq(id))
            .filter(outbox::Column::Status.eq(OutboxStatus::Dead.as_str()))
            .exec(self.write_connection())
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// One page of the outbox, newest first, optionally of one channel and one status, and the total
    /// count.
    pub async fn list_outbox(
        &self,
        channel: Option<OutboxChannel>,
        status: Option<OutboxStatus>,
        page: u64,
        per_page: u64,
    ) -> Result<(Vec<outbox::Model>, u64)> {
        let mut query = outbox::Entity::find();
        if let Some(channel) = channel {
            query = query.filter(outbox::Column::Channel.eq(channel.as_str()));
        }
        if let Some(status) = status {
            query = query.filter(outbox::Column::Status.eq(status.as_str()));
        }
        let total = query.clone().count(&self.db).await?;
        let per_page = per_page.clamp(1, 500);
        let items = query
            .order_by_desc(outbox::Column::Id)
            .offset(page.saturating_sub(1).saturating_mul(per_page))
            .limit(per_page)
            .all(&self.db)
            .await?;
        Ok((items, total))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 20,
            first_delay: Duration::minutes(1),
            max_delay: Duration::minutes(30),
            lease: Duration::minutes(10),
        };
        let table = [
            (1, 1),
            (2, 2),
            (3, 4),
            (4, 8),
            (5, 16),
            (6, 30),
            (19, 30),
            (200, 30),
        ];
        for (attempts, minutes) in table {
            assert_eq!(
                policy.delay_after(attempts),
                Duration::minutes(minutes),
                "after {attempts} attempts"
            );
        }
    }

    #[test]
    fn the_token_of_a_raters_link_is_taken_out_of_a_sent_mail() {
        let token = "a".repeat(64);
        let table = [
            (
                format!("请点击 https://x.example/r/{token} 评价"),
                Some("请点击 https://x.example/r/（链接已随邮件发出，不再保存） 评价".to_owned()),
            ),
            (
                format!("<a href=\"/r/{token}\">评价</a>"),
                Some("<a href=\"/r/（链接已随邮件发出，不再保存）\">评价</a>".to_owned()),
            ),
            (
                format!("<a href=\"https:&#x2f;&#x2f;x.example&#x2f;r&#x2f;{token}\">评价</a>"),
                Some(
                    "<a href=\"https:&#x2f;&#x2f;x.example&#x2f;r&#x2f;（链接已随邮件发出，不再保存）\">评价</a>"
                        .to_owned(),
                ),
            ),
            (
                format!("/r/{token} 与 &#47;r&#47;{token}"),
                Some(
                    "/r/（链接已随邮件发出，不再保存） 与 &#47;r&#47;（链接已随邮件发出，不再保存）"
                        .to_owned(),
                ),
            ),
            ("见 /r/short 与 /api/v1".to_owned(), None),
            ("没有链接".to_owned(), None),
        ];
        for (text, expected) in table {
            assert_eq!(without_link_tokens(&text), expected, "{text}");
        }
    }
}
