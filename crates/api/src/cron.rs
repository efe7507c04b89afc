//! Five-field cron schedules in UTC, as ScheduledBackup's `schedule` takes them: `*`, lists,
//! ranges and steps per field, and the `@daily`-style shorthands. Day-of-month and day-of-week
//! combine as in Vixie cron (and Kubernetes CronJobs): when both are restricted, either matches.

use k8s_openapi::jiff::civil::{Date, DateTime, Time};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{Timestamp, ToSpan};

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    any_day_of_month: bool,
    any_day_of_week: bool,
}

/// How far ahead a next run is looked for: a schedule like `0 0 30 2 *` never fires.
const HORIZON_DAYS: i64 = 366 * 5;

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => return Err(format!("unknown shorthand {other:?}")),
            other => other,
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(format!(
                "{} fields; five are needed (minute hour day-of-month month day-of-week)",
                fields.len()
            ));
        };
        let mut days_of_week = field(dow, 0, 7, "day-of-week")?;
        // 7 is Sunday too.
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week | 1) & !(1 << 7);
        }
        Ok(Schedule {
            minutes: field(minute, 0, 59, "minute")?,
            hours: field(hour, 0, 23, "hour")?,
            days_of_month: field(dom, 1, 31, "day-of-month")?,
            months: field(month, 1, 12, "month")?,
            days_of_week,
            any_day_of_month: dom.starts_with('*'),
            any_day_of_week: dow.starts_with('*'),
        })
    }

    /// The first scheduled minute strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = after.to_zoned(TimeZone::UTC).datetime();
        let mut day = start.date();
        // The first candidate minute of the start day is the minute after `start`.
        let mut from = Some((start.hour(), start.minute() + 1));
        for _ in 0..HORIZON_DAYS {
            if self.runs_on(day)
                && let Some(time) = self.first_time_from(from.unwrap_or((0, 0)))
            {
                let at = DateTime::from_parts(day, time);
                return at.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp());
            }
            day = day.tomorrow().ok()?;
            from = None;
        }
        None
    }

    /// The latest scheduled minute in `(after, now]`, looking back at most `window`: what a
    /// controller that was away should start now, if anything.
    pub fn last_due(
        &self,
        after: Timestamp,
        now: Timestamp,
        window: std::time::Duration,
    ) -> Option<Timestamp> {
        let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        let earliest = now.checked_sub(window.seconds()).unwrap_or(now);
        let mut cursor = after.max(earliest.checked_sub(1.second()).unwrap_or(earliest));
        let mut due = None;
        while let Some(next) = self.next_after(cursor) {
            if next > now {
                break;
            }
            due = Some(next);
            cursor = next;
        }
        due
    }

    fn runs_on(&self, day: Date) -> bool {
        if !bit(self.months, day.month() as i64) {
            return false;
        }
        let dom = bit(self.days_of_month, day.day() as i64);
        let dow = bit(
            self.days_of_week,
            day.weekday().to_sunday_zero_offset() as i64,
        );
        match (self.any_day_of_month, self.any_day_of_week) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    fn first_time_from(&self, (hour, minute): (i8, i8)) -> Option<Time> {
        let (mut hour, mut minute) = (hour as i64, minute as i64);
        if minute > 59 {
            hour += 1;
            minute = 0;
        }
        while hour <= 23 {
            if bit(self.hours, hour)
                && let Some(m) = (minute..=59).find(|m| bit(self.minutes, *m))
            {
                return Time::new(hour as i8, m as i8, 0, 0).ok();
            }
            hour += 1;
            minute = 0;
        }
        None
    }
}

fn bit(set: u64, n: i64) -> bool {
    (0..64).contains(&n) && set & (1 << n) != 0
}

/// One field as a bit set: `*`, `*/s`, `a`, `a-b`, `a-b/s`, `a/s`, comma-separated.
fn field(text: &str, min: u32, max: u32, name: &str) -> Result<u64, String> {
    let number = |s: &str| -> Result<u32, String> {
        let n: u32 = s
            .parse()
            .map_err(|_| format!("{name} {s:?} is not a number"))?;
        if !(min..=max).contains(&n) {
            return Err(format!("{name} {n} is outside {min}-{max}"));
        }
        Ok(n)
    };
    let mut set = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{name} step {step:?} is not a positive number"))?;
                (range, step)
            }
            None => (part, 1),
        };
        let (low, high) = match range {
            "*" => (min, max),
            _ => match range.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                // `a/s` runs from a to the end of the field.
                None if step > 1 => (number(range)?, max),
                None => {
                    let n = number(range)?;
                    (n, n)
                }
            },
        };
        if low > high {
            return Err(format!("{name} range {range:?} runs backwards"));
        }
        for n in (low..=high).step_by(step as usize) {
            set |= 1 << n;
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(schedule: &str, after: &str) -> String {
        Schedule::parse(schedule)
            .unwrap()
            .next_after(at(after))
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn next_runs_follow_each_field() {
        assert_eq!(
            next("*/15 * * * *", "2026-12-02T16:07:30Z"),
            "2026-12-02T16:15:00Z"
        );
        assert_eq!(
            next("0 3 * * *", "2026-12-02T03:00:00Z"),
            "2026-12-03T03:00:00Z"
        );
        assert_eq!(
            next("@daily", "2026-12-31T23:59:00Z"),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            next("@hourly", "2026-12-02T16:59:59Z"),
            "2026-12-02T17:00:00Z"
        );
        // 2026-12-06 is a Sunday; 7 is Sunday too.
        assert_eq!(
            next("30 1 * * 0", "2026-12-02T00:00:00Z"),
            "2026-12-06T01:30:00Z"
        );
        assert_eq!(
            next("30 1 * * 7", "2026-12-02T00:00:00Z"),
            "2026-12-06T01:30:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-03-01T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        assert_eq!(
            next("5-10/5 8,20 * 1-6 *", "2026-12-02T00:00:00Z"),
            "2027-01-01T08:05:00Z"
        );
        assert_eq!(next("0 0 30 2 *", "2026-01-01T00:00:00Z"), "");
    }

    #[test]
    fn day_of_month_and_day_of_week_combine_as_either() {
        // The 15th, or any Monday: Monday 2026-12-07 comes first.
        assert_eq!(
            next("0 0 15 * 1", "2026-12-02T00:00:00Z"),
            "2026-12-07T00:00:00Z"
        );
        assert_eq!(
            next("0 0 15 * 1", "2026-12-14T00:00:00Z"),
            "2026-12-15T00:00:00Z"
        );
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        for (text, says) in [
            ("* * * *", "4 fields"),
            ("60 * * * *", "minute 60 is outside 0-59"),
            ("* * 0 * *", "day-of-month 0 is outside 1-31"),
            ("*/0 * * * *", "step \"0\""),
            ("5-1 * * * *", "runs backwards"),
            ("@often", "unknown shorthand"),
            ("a * * * *", "not a number"),
        ] {
            let err = Schedule::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn the_last_due_run_is_the_latest_within_the_window() {
        let hourly = Schedule::parse("@hourly").unwrap();
        let window = std::time::Duration::from_secs(300);
        // Due at 17:00; 17:02 is within 300 s of it.
        assert_eq!(
            hourly.last_due(
                at("2026-12-02T16:30:00Z"),
                at("2026-12-02T17:02:00Z"),
                window
            ),
            Some(at("2026-12-02T17:00:00Z"))
        );
        // Already started at 17:00: nothing more is due.
        assert_eq!(
            hourly.last_due(
                at("2026-12-02T17:00:00Z"),
                at("2026-12-02T17:02:00Z"),
                window
            ),
            None
        );
        // Away for hours: the missed runs are past the window and skipped, none is due now.
        assert_eq!(
            hourly.last_due(
                at("2026-12-02T10:00:00Z"),
                at("2026-12-02T17:30:00Z"),
                window
            ),
            None
        );
        let minutely = Schedule::parse("* * * * *").unwrap();
        assert_eq!(
            minutely.last_due(
                at("2026-12-02T10:00:00Z"),
                at("2026-12-02T17:30:30Z"),
                window
            ),
            Some(at("2026-12-02T17:30:00Z"))
        );
    }
}
