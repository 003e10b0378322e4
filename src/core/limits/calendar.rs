//! UTC calendar windows in plain integer arithmetic: the minute, day and month a time falls in,
//! and when each ends. (Civil-date conversion after Howard Hinnant's `days_from_civil`.)

use crate::core::route::BudgetPeriod;

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;

/// Minutes since the epoch.
pub fn minute(now_ms: u64) -> u64 {
    now_ms / MINUTE_MS
}

/// When `minute` ends, in ms since the epoch.
pub fn minute_end_ms(minute: u64) -> u64 {
    (minute + 1) * MINUTE_MS
}

/// The budget period `now_ms` falls in: days since the epoch, or months since January 1970.
pub fn period(per: BudgetPeriod, now_ms: u64) -> u64 {
    let day = now_ms / DAY_MS;
    match per {
        BudgetPeriod::Day => day,
        BudgetPeriod::Month => {
            let (year, month, _) = civil_from_days(day);
            (year - 1970) * 12 + (month - 1)
        }
    }
}

/// When `period` ends, in ms since the epoch.
pub fn period_end_ms(per: BudgetPeriod, period: u64) -> u64 {
    match per {
        BudgetPeriod::Day => (period + 1) * DAY_MS,
        BudgetPeriod::Month => {
            let next = period + 1;
            days_from_civil(1970 + next / 12, next % 12 + 1) * DAY_MS
        }
    }
}

/// The (year, month 1..=12, day 1..=31) of a day since the epoch.
pub fn civil_from_days(day: u64) -> (u64, u64, u64) {
    // Shift to a 400-year era starting 0000-03-01, so that leap days end each year.
    let z = day + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day_of_month = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day_of_month)
}

/// Days since the epoch of the first day of `month` (1..=12) in `year` (≥ 1970).
fn days_from_civil(year: u64, month: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let yoe = year - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ms since the epoch of a UTC midnight, from Python's `datetime`.
    const JAN_2024: u64 = 1_704_067_200_000;
    const FEB_29_2024: u64 = 1_709_164_800_000;
    const MAR_2024: u64 = 1_709_251_200_000;
    const DEC_2026: u64 = 1_796_083_200_000;
    const JAN_2027: u64 = 1_798_761_600_000;

    #[test]
    fn months_start_and_end_on_the_first_at_midnight() {
        assert_eq!(period(BudgetPeriod::Month, 0), 0);
        assert_eq!(period_end_ms(BudgetPeriod::Month, 0), 31 * DAY_MS);
        for (start, end) in [(JAN_2024, 1_706_745_600_000), (DEC_2026, JAN_2027)] {
            let p = period(BudgetPeriod::Month, start);
            assert_eq!(period(BudgetPeriod::Month, end - 1), p);
            assert_eq!(period(BudgetPeriod::Month, end), p + 1);
            assert_eq!(period_end_ms(BudgetPeriod::Month, p), end);
        }
        // A leap February ends on the 29th.
        let feb = period(BudgetPeriod::Month, FEB_29_2024);
        assert_eq!(period_end_ms(BudgetPeriod::Month, feb), MAR_2024);
        assert_eq!(feb, (2024 - 1970) * 12 + 1);
    }

    #[test]
    fn days_and_minutes() {
        assert_eq!(
            period(BudgetPeriod::Day, FEB_29_2024 + 5),
            FEB_29_2024 / DAY_MS
        );
        assert_eq!(
            period_end_ms(BudgetPeriod::Day, FEB_29_2024 / DAY_MS),
            MAR_2024
        );
        assert_eq!(minute_end_ms(minute(JAN_2024 + 59_999)), JAN_2024 + 60_000);
    }
}
