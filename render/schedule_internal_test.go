package render

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestLongestScheduleGap measures schedules whose longest gap is known, and
// refuses the ones that cannot be measured.
func TestLongestScheduleGap(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		schedule string
		want     time.Duration
	}{
		{"0 2 * * *", day},
		{"@daily", day},
		{"@hourly", time.Hour},
		{"* * * * *", time.Minute},
		{"*/15 * * * *", 15 * time.Minute},
		{"0 */6 * * *", 6 * time.Hour},
		{"0 9,17 * * *", 16 * time.Hour},
		{"30 3 * * 0", 7 * day},
		{"@weekly", 7 * day},
		// Friday 02:00 to Monday 02:00.
		{"0 2 * * 1-5", 3 * day},
		// Every minute of the first hour of weekdays: Friday 00:59 to Monday 00:00.
		{"* 0 * * mon-fri", 3*day - 59*time.Minute},
		// 31 January to 1 March in a leap year is 30 days; 1 to 1 is at most 31.
		{"0 0 1 * *", 31 * day},
		// 31 July to 31 August is 31 days; 31 August to 31 October is 61.
		{"0 0 31 * *", 61 * day},
		// Leap days: 29 February 2024 to 29 February 2028.
		{"0 0 29 2 *", 1461 * day},
		{"@yearly", 366 * day},
		// Day-of-month and day-of-week both restricted: either matches.
		{"0 0 1 * 0", 7 * day},
	} {
		t.Run(tc.schedule, func(t *testing.T) {
			g := NewWithT(t)
			got, ok := measureScheduleGap(tc.schedule)
			cached, cachedOK := longestScheduleGap(tc.schedule)
			g.Expect(cached).To(Equal(got))
			g.Expect(cachedOK).To(Equal(ok))
			g.Expect(ok).To(BeTrue())
			g.Expect(got).To(Equal(tc.want))
		})
	}
	for _, bad := range []string{"", "61 * * * *", "0 2 * * 7", "@every 1h", "0 0 30 2 *", "not a schedule"} {
		_, ok := measureScheduleGap(bad)
		NewWithT(t).Expect(ok).To(BeFalse(), "%q", bad)
	}
}

// TestLongestScheduleGapIgnoresLocalTimeZone: cron's parser uses the
// process's zone by default; render must not, or a daylight-saving change
// would make a daily schedule's gap 25 hours on some machines.
func TestLongestScheduleGapIgnoresLocalTimeZone(t *testing.T) {
	g := NewWithT(t)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.FixedZone("CET-with-no-tzdata", 3600)
	}
	saved := time.Local
	t.Cleanup(func() { time.Local = saved })
	time.Local = berlin
	got, ok := measureScheduleGap("30 2 * * *")
	g.Expect(ok).To(BeTrue())
	g.Expect(got).To(Equal(24 * time.Hour))
}

func TestFormatDuration(t *testing.T) {
	g := NewWithT(t)
	g.Expect(formatDuration(48 * time.Hour)).To(Equal("2d"))
	g.Expect(formatDuration(12 * time.Hour)).To(Equal("12h"))
	g.Expect(formatDuration(30 * time.Minute)).To(Equal("30m"))
	g.Expect(formatDuration(90 * time.Second)).To(Equal("1m30s"))
}
