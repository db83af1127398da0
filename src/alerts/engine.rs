//! The lifecycle: conditions in, alert episodes and outbox messages out.
//!
//! [`apply`] deduplicates (one open alert per rule and subject; an event once per subject,
//! ever), applies the cooldown (a condition that clears and returns within it reopens the same
//! alert silently; a new episode within it is recorded but not notified) and resolves alerts
//! whose condition cleared. [`schedule`] decides when waiting notifications become outbox
//! messages: at once, at the end of quiet hours (together), or in the daily digest.
//!
//! Time is passed in (Unix seconds) so every decision is tested without waiting. It never
//! sends anything itself.

use super::push::{self, Note};
use super::render::{self, LinkCtx};
use super::webhook::{self, Hook};
use super::{AlertError, Condition, ConditionState};
use crate::config::{Config, WebhookFormat};
use crate::store::Store;
use crate::store::alerts::{AlertRow, NewAlert, NewMessage};
use jiff::tz::TimeZone;

/// How notifications go out (from the config).
#[derive(Clone, Debug)]
pub struct Policy {
    pub cooldown_secs: i64,
    /// Local hours `[from, to)`; wraps past midnight when `from > to`.
    pub quiet: Option<(u8, u8)>,
    pub digest: bool,
    pub digest_hour: u8,
    pub tz: TimeZone,
    pub email: bool,
    pub webhook: Option<(String, WebhookFormat)>,
    /// The push channels set up (see [`super::push::CHANNELS`]).
    pub push: Vec<&'static str>,
    /// Per channel (`email`, `webhook`, each push channel), the alert kinds it gets; a channel
    /// not listed gets every kind.
    pub kinds: Vec<(&'static str, Vec<String>)>,
    pub expire_secs: i64,
}

impl Policy {
    pub fn from_config(cfg: &Config, email: bool) -> Policy {
        Policy {
            cooldown_secs: cfg.alert_cooldown_minutes as i64 * 60,
            quiet: cfg.quiet_hours_from.zip(cfg.quiet_hours_to),
            digest: cfg.alert_digest,
            digest_hour: cfg.alert_digest_hour,
            tz: cfg.time_zone(),
            email,
            webhook: cfg.webhook_url.clone().map(|u| (u, cfg.webhook_format)),
            push: push::CHANNELS
                .into_iter()
                .filter(|c| push::missing(c, cfg).is_none())
                .collect(),
            kinds: ["email", "webhook"]
                .into_iter()
                .chain(push::CHANNELS)
                .map(|c| (c, push::kinds(c, cfg).to_vec()))
                .filter(|(_, k)| !k.is_empty())
                .collect(),
            expire_secs: cfg.outbox_expire_hours as i64 * 3600,
        }
    }

    fn any_channel(&self) -> bool {
        self.email || self.webhook.is_some() || !self.push.is_empty()
    }

    /// The part of `items` that `channel` gets (all of them unless it is limited to some kinds).
    fn for_channel(&self, channel: &str, items: &[render::Item]) -> Vec<render::Item> {
        match self.kinds.iter().find(|(c, _)| *c == channel) {
            Some((_, k)) => items
                .iter()
                .filter(|i| push::wants(k, &i.rule))
                .cloned()
                .collect(),
            None => items.to_vec(),
        }
    }

    fn local(&self, now: i64) -> Option<jiff::Zoned> {
        jiff::Timestamp::from_second(now)
            .ok()
            .map(|t| t.to_zoned(self.tz.clone()))
    }

    /// Whether `now` falls inside the quiet hours.
    pub fn is_quiet(&self, now: i64) -> bool {
        let (Some((from, to)), Some(z)) = (self.quiet, self.local(now)) else {
            return false;
        };
        let h = z.hour() as u8;
        if from == to {
            false
        } else if from < to {
            (from..to).contains(&h)
        } else {
            h >= from || h < to
        }
    }
}

/// What one [`apply`] changed (for logs and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub triggered: Vec<i64>,
    pub reopened: Vec<i64>,
    pub resolved: Vec<i64>,
    /// Triggered inside the cooldown: recorded, not notified.
    pub suppressed: Vec<i64>,
}

/// Applies `conds` at `now`. `silent` records new alerts without notifying anyone (the new
/// household's inventory in the learning period).
pub fn apply(
    store: &Store,
    conds: &[Condition],
    now: i64,
    policy: &Policy,
    silent: bool,
) -> Result<Applied, AlertError> {
    let mut out = Applied::default();
    let initial = if silent || !policy.any_channel() {
        "off"
    } else {
        "pending"
    };
    for c in conds {
        let insert = |notify: &str| {
            store.insert_alert(&NewAlert {
                rule: &c.rule,
                subject: &c.subject,
                severity: c.severity.as_str(),
                title: &c.title,
                body: &c.body,
                facts: &c.facts,
                links: &c.links,
                auto_resolve: c.state != ConditionState::Event,
                now,
                notify,
            })
        };
        match c.state {
            ConditionState::Event => {
                if store.latest_alert(&c.rule, &c.subject)?.is_none() {
                    out.triggered.push(insert(initial)?);
                }
            }
            ConditionState::Active => {
                if let Some(open) = store.open_alert(&c.rule, &c.subject)? {
                    store.touch_alert(open.id, now, &c.title, &c.body, &c.facts)?;
                    continue;
                }
                let latest = store.latest_alert(&c.rule, &c.subject)?;
                if let Some(prev) = latest.filter(|a| {
                    a.auto_resolve
                        && a.acked_at.is_none()
                        && a.resolved_at
                            .is_some_and(|r| now - r < policy.cooldown_secs)
                }) {
                    store.reopen_alert(prev.id, now)?;
                    store.touch_alert(prev.id, now, &c.title, &c.body, &c.facts)?;
                    out.reopened.push(prev.id);
                    continue;
                }
                let recent = store
                    .last_queued_at(&c.rule, &c.subject)?
                    .is_some_and(|q| now - q < policy.cooldown_secs);
                if recent && initial == "pending" {
                    out.suppressed.push(insert("suppressed")?);
                } else {
                    out.triggered.push(insert(initial)?);
                }
            }
            ConditionState::Cleared => {
                if let Some(open) = store.open_alert(&c.rule, &c.subject)?
                    && open.auto_resolve
                {
                    store.resolve_alert(open.id, now)?;
                    out.resolved.push(open.id);
                }
            }
        }
    }
    Ok(out)
}

/// One alert: its own words; several: a list of titles. With the highest severity.
fn summary_of(items: &[render::Item]) -> (String, super::Severity) {
    match items {
        [one] => (one.body.clone(), render::severity_of(&one.severity)),
        many => (
            many.iter()
                .map(|i| format!("• {}", i.title))
                .collect::<Vec<_>>()
                .join("\n"),
            many.iter()
                .map(|i| render::severity_of(&i.severity))
                .max()
                .unwrap_or(super::Severity::Info),
        ),
    }
}

/// Outbox messages for `items` on every configured channel, each channel getting the alert
/// kinds it asked for (no message when none of `items` is for it).
fn messages(
    policy: &Policy,
    links: &LinkCtx,
    kind: &'static str,
    intro: &str,
    subject: &str,
    all_items: &[render::Item],
    now: i64,
) -> Result<Vec<NewMessage>, AlertError> {
    let not_before = now;
    let expires_at = now + policy.expire_secs;
    // A channel that gets only some of the items: one item is named by its own title.
    let subject_for = |items: &[render::Item]| match items {
        [one] if all_items.len() > 1 => one.title.clone(),
        _ => subject.to_string(),
    };
    let mut out = Vec::new();
    let items = policy.for_channel("email", all_items);
    if policy.email && !items.is_empty() {
        let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
        let m = render::alerts_mail(intro, &subject_for(&items), &items, &links.dashboard)?;
        out.push(NewMessage {
            channel: "email",
            kind,
            alert_ids: ids,
            subject: m.subject,
            text_body: m.text,
            html_body: Some(m.html),
            json_body: None,
            not_before,
            expires_at,
        });
    }
    let items = policy.for_channel("webhook", all_items);
    if let Some((url, format)) = &policy.webhook
        && !items.is_empty()
    {
        let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
        let alerts_page = links.url("/alerts");
        let (message, sev) = summary_of(&items);
        let (rule, subj, facts, ack) = match items.as_slice() {
            [one] => (
                Some(one.rule.as_str()),
                Some(one.subject.as_str()),
                one.facts.clone(),
                one.ack_url.as_deref(),
            ),
            _ => (None, None, Vec::new(), None),
        };
        let title = subject_for(&items);
        let (post_url, body) = webhook::body(
            *format,
            url,
            &Hook {
                kind,
                title: &title,
                message: &message,
                severity: sev,
                alert_ids: &ids,
                rule,
                subject: subj,
                facts: &facts,
                url: &alerts_page,
                ack_url: ack,
            },
        );
        out.push(NewMessage {
            channel: "webhook",
            kind,
            alert_ids: ids,
            // The webhook's target URL travels in the subject column: the format decides it.
            subject: post_url,
            text_body: message,
            html_body: None,
            json_body: Some(body.to_string()),
            not_before,
            expires_at,
        });
    }
    for &channel in &policy.push {
        let items = policy.for_channel(channel, all_items);
        if items.is_empty() {
            continue;
        }
        let (message, severity) = summary_of(&items);
        let note = Note {
            kind: kind.to_string(),
            title: subject_for(&items),
            message: message.clone(),
            severity,
            url: links.url("/alerts"),
        };
        out.push(NewMessage {
            channel,
            kind,
            alert_ids: items.iter().map(|i| i.id).collect(),
            // Only what the message says: the address and token are read at send time.
            subject: note.title.clone(),
            text_body: message,
            html_body: None,
            json_body: Some(
                serde_json::to_string(&note).map_err(|e| AlertError::Render {
                    what: "push",
                    detail: e.to_string(),
                })?,
            ),
            not_before,
            expires_at,
        });
    }
    Ok(out)
}

/// What [`schedule`] queued.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scheduled {
    pub messages: usize,
    pub alerts: usize,
}

/// Turns waiting notifications into outbox messages when the policy allows: one message per
/// alert outside quiet hours; alerts that waited through quiet hours together in one message
/// when they end; with the digest on, everything once a day at the digest hour.
pub fn schedule(
    store: &mut Store,
    policy: &Policy,
    links: &LinkCtx,
    now: i64,
) -> Result<Scheduled, AlertError> {
    let pending = store.alerts_pending_notify()?;
    if pending.is_empty() {
        return Ok(Scheduled::default());
    }
    let mut done = Scheduled::default();
    if policy.digest {
        let Some(local) = policy.local(now) else {
            return Ok(done);
        };
        let today = local.date().to_string();
        let due = local.hour() as u8 >= policy.digest_hour
            && store.alert_state("last_digest_day")?.as_deref() != Some(today.as_str());
        if !due {
            return Ok(done);
        }
        let items: Vec<render::Item> = pending.iter().map(|a| links.item(a, now)).collect();
        let subject = format!("Daily digest: {} alert(s)", items.len());
        let msgs = messages(
            policy,
            links,
            "digest",
            "What lanmeter noticed since the last digest:",
            &subject,
            &items,
            now,
        )?;
        let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
        store.queue_messages(&ids, &msgs, now)?;
        store.set_alert_state("last_digest_day", &today)?;
        done.messages += msgs.len();
        done.alerts += ids.len();
        return Ok(done);
    }
    if policy.is_quiet(now) {
        return Ok(done);
    }
    let (held, fresh): (Vec<AlertRow>, Vec<AlertRow>) = pending
        .into_iter()
        .partition(|a| policy.is_quiet(a.triggered_at));
    // Held through quiet hours: only what is still open is worth waking up to, in one message.
    let (held_open, held_over): (Vec<AlertRow>, Vec<AlertRow>) = held
        .into_iter()
        .partition(|a| a.resolved_at.is_none() && a.acked_at.is_none());
    for a in &held_over {
        store.set_alert_notify(a.id, "skipped")?;
    }
    if !held_open.is_empty() {
        let items: Vec<render::Item> = held_open.iter().map(|a| links.item(a, now)).collect();
        let subject = if items.len() == 1 {
            items[0].title.clone()
        } else {
            format!("{} alerts during quiet hours", items.len())
        };
        let msgs = messages(
            policy,
            links,
            "alert",
            "These came up during quiet hours and still need attention:",
            &subject,
            &items,
            now,
        )?;
        let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
        store.queue_messages(&ids, &msgs, now)?;
        done.messages += msgs.len();
        done.alerts += ids.len();
    }
    for a in &fresh {
        let item = links.item(a, now);
        let msgs = messages(
            policy,
            links,
            "alert",
            "lanmeter noticed something on your network:",
            &item.title.clone(),
            std::slice::from_ref(&item),
            now,
        )?;
        store.queue_messages(&[a.id], &msgs, now)?;
        done.messages += msgs.len();
        done.alerts += 1;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::super::Severity;
    use super::*;

    fn policy() -> Policy {
        Policy {
            cooldown_secs: 3600,
            quiet: None,
            digest: false,
            digest_hour: 8,
            tz: TimeZone::UTC,
            email: true,
            webhook: Some(("http://127.0.0.1:9/hook".into(), WebhookFormat::Generic)),
            push: Vec::new(),
            kinds: Vec::new(),
            expire_secs: 86_400,
        }
    }

    fn links() -> LinkCtx {
        LinkCtx {
            dashboard: "http://lm:8080".into(),
            secret: "k".into(),
            ack_secs: 86_400,
            tz: TimeZone::UTC,
        }
    }

    fn cond(subject: &str, state: ConditionState) -> Condition {
        Condition {
            rule: "offline".into(),
            subject: subject.into(),
            severity: Severity::Warning,
            title: format!("{subject} offline"),
            body: "b".into(),
            facts: vec![],
            links: vec![("Open".into(), "/devices/1".into())],
            state,
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("a.db")).unwrap();
        (dir, s)
    }

    /// Email messages in the outbox (the webhook twin is counted separately).
    fn emails(s: &Store) -> Vec<crate::store::alerts::OutboxRow> {
        let mut v = s.outbox_recent(1000).unwrap();
        v.retain(|m| m.channel == "email");
        v.reverse();
        v
    }

    #[test]
    fn several_channels_each_get_the_alert_kinds_they_asked_for() {
        let (_d, mut s) = store();
        let p = Policy {
            push: vec!["ntfy", "telegram"],
            kinds: vec![("telegram", vec!["new_device".into()])],
            ..policy()
        };
        let l = links();
        let now = 1_700_000_000;
        apply(&s, &[cond("cam", ConditionState::Active)], now, &p, false).unwrap();
        schedule(&mut s, &p, &l, now).unwrap();
        let mut got: Vec<String> = s
            .outbox_recent(100)
            .unwrap()
            .into_iter()
            .map(|m| m.channel)
            .collect();
        got.sort();
        // An offline alert: not for Telegram, which only wants new devices.
        assert_eq!(got, ["email", "ntfy", "webhook"]);
        let ntfy = s
            .outbox_recent(100)
            .unwrap()
            .into_iter()
            .find(|m| m.channel == "ntfy")
            .unwrap();
        let note: push::Note = serde_json::from_str(ntfy.json_body.as_deref().unwrap()).unwrap();
        assert_eq!(note.title, "cam offline");
        assert_eq!(note.url, "http://lm:8080/alerts");
        // No secret or address is stored: they are read when it is sent.
        assert_eq!(ntfy.subject, "cam offline");
    }

    #[test]
    fn a_flapping_condition_notifies_once_per_cooldown_window() {
        let (_d, mut s) = store();
        let p = policy();
        let l = links();
        let t0 = 1_700_000_000;
        // Flaps every 5 minutes for 3 hours: on, off, on, off …
        for step in 0..36 {
            let now = t0 + step * 300;
            let state = if step % 2 == 0 {
                ConditionState::Active
            } else {
                ConditionState::Cleared
            };
            apply(&s, &[cond("cam", state)], now, &p, false).unwrap();
            schedule(&mut s, &p, &l, now).unwrap();
        }
        let mails = emails(&s);
        // Notified at t0; the flaps reopen the same alert until it has been resolved for a
        // whole cooldown, which never happens while it flaps: one notification per episode,
        // and no more than one per hour ever.
        assert!(!mails.is_empty());
        let times: Vec<i64> = mails.iter().map(|m| m.created_at).collect();
        for w in times.windows(2) {
            assert!(
                w[1] - w[0] >= 3600,
                "two notifications within the cooldown: {times:?}"
            );
        }
        assert_eq!(times[0], t0);
        let alerts = s.recent_alerts(100).unwrap();
        assert_eq!(alerts.len(), 1, "one episode, reopened: {alerts:?}");
        assert_eq!(alerts[0].occurrences, 18);
        assert_eq!(mails.len(), 1);
        // Webhook twin for each email.
        assert_eq!(s.outbox_recent(1000).unwrap().len(), 2);
    }

    #[test]
    fn a_new_episode_after_the_cooldown_notifies_again_and_within_is_suppressed() {
        let (_d, mut s) = store();
        let p = policy();
        let l = links();
        let t0 = 1_700_000_000;
        let step = |s: &mut Store, now: i64, st| {
            apply(s, &[cond("cam", st)], now, &p, false).unwrap();
            schedule(s, &p, &l, now).unwrap();
        };
        step(&mut s, t0, ConditionState::Active);
        step(&mut s, t0 + 3000, ConditionState::Cleared);
        // Resolved for 3000 s and only 3500 s after the first notification…
        // the cleared spell is short of the cooldown, so this reopens silently.
        step(&mut s, t0 + 3500, ConditionState::Active);
        assert_eq!(emails(&s).len(), 1);
        step(&mut s, t0 + 3600, ConditionState::Cleared);
        // Resolved for more than the cooldown: a new episode, notified.
        step(&mut s, t0 + 3600 + 3601, ConditionState::Active);
        assert_eq!(emails(&s).len(), 2);
        // Resolve and come back after cooldown of resolution, but acknowledge in between so
        // the reopen path is not taken; queued recently → suppressed.
        let open = s.open_alert("offline", "cam").unwrap().unwrap();
        s.ack_alert(open.id, t0 + 7300, "admin").unwrap();
        step(&mut s, t0 + 7400, ConditionState::Cleared);
        step(&mut s, t0 + 7500, ConditionState::Active);
        assert_eq!(emails(&s).len(), 2, "suppressed by cooldown");
        let latest = s.latest_alert("offline", "cam").unwrap().unwrap();
        assert_eq!(latest.notify, "suppressed");
    }

    #[test]
    fn events_alert_once_per_subject_and_resolve_on_ack() {
        let (_d, mut s) = store();
        let p = policy();
        let mut c = cond("device:5", ConditionState::Event);
        c.rule = "new_device".into();
        let a = apply(&s, std::slice::from_ref(&c), 100, &p, false).unwrap();
        assert_eq!(a.triggered.len(), 1);
        schedule(&mut s, &p, &links(), 100).unwrap();
        let again = apply(&s, &[c], 200, &p, false).unwrap();
        assert!(again.triggered.is_empty());
        s.ack_alert(a.triggered[0], 300, "link").unwrap();
        assert_eq!(
            s.alert(a.triggered[0]).unwrap().unwrap().stage(),
            "resolved"
        );
    }

    #[test]
    fn quiet_hours_hold_and_send_together_and_digest_waits_for_its_hour() {
        let (_d, mut s) = store();
        let mut p = policy();
        p.quiet = Some((22, 7));
        let l = links();
        // 2023-11-14 23:00 UTC is inside quiet hours.
        let night = 1_700_002_800;
        assert!(p.is_quiet(night) && !p.is_quiet(night + 9 * 3600));
        for subj in ["a", "b", "c"] {
            apply(&s, &[cond(subj, ConditionState::Active)], night, &p, false).unwrap();
        }
        apply(
            &s,
            &[cond("c", ConditionState::Cleared)],
            night + 600,
            &p,
            false,
        )
        .unwrap();
        assert_eq!(schedule(&mut s, &p, &l, night + 3600).unwrap().messages, 0);
        let morning = night + 8 * 3600 + 60;
        let done = schedule(&mut s, &p, &l, morning).unwrap();
        assert_eq!((done.alerts, done.messages), (2, 2), "c resolved overnight");
        let m = &emails(&s)[0];
        assert_eq!(m.subject, "2 alerts during quiet hours");
        assert!(m.text_body.contains("a offline") && m.text_body.contains("b offline"));

        let (_d2, mut s) = store();
        let mut p = policy();
        p.digest = true;
        p.digest_hour = 8;
        let t = 1_699_948_800; // 2023-11-14 08:00 UTC
        apply(
            &s,
            &[cond("x", ConditionState::Active)],
            t - 3600,
            &p,
            false,
        )
        .unwrap();
        assert_eq!(
            schedule(&mut s, &p, &l, t - 1800).unwrap().messages,
            0,
            "before 08:00"
        );
        assert_eq!(schedule(&mut s, &p, &l, t + 60).unwrap().alerts, 1);
        assert_eq!(emails(&s)[0].subject, "Daily digest: 1 alert(s)");
        apply(
            &s,
            &[cond("y", ConditionState::Active)],
            t + 3600,
            &p,
            false,
        )
        .unwrap();
        assert_eq!(
            schedule(&mut s, &p, &l, t + 7200).unwrap().messages,
            0,
            "one digest a day"
        );
        assert_eq!(
            schedule(&mut s, &p, &l, t + 86_460).unwrap().alerts,
            1,
            "next morning"
        );
    }
}
