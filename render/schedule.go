package render

import (
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// scheduleReference is the fixed start of the window over which a backup
// schedule's activations are examined: 1 January 2024, 00:00 UTC, a leap
// year. Render reads no clock, so the same schedule always gives the same
// interval.
var scheduleReference = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// scheduleWindowYears is long enough to see two 29 Februaries, so even a
// schedule that runs on leap days only has a measured gap.
const scheduleWindowYears = 8

// longestScheduleGap returns the longest time between two consecutive
// activations of a 5-field cron schedule (or @daily and friends), in UTC,
// over the reference window. ok is false when the schedule does not parse or
// never fires.
//
// Hours and minutes do not depend on the day in a cron schedule, so every
// matching day has the same activation times: the gaps are the gaps within
// one day and, between consecutive matching days, from the last activation
// of one to the first of the next. That needs one Next call per matching day
// (plus one per activation of a single day), not one per activation.
func longestScheduleGap(schedule string) (time.Duration, bool) {
	gapCache.Lock()
	g, hit := gapCache.m[schedule]
	gapCache.Unlock()
	if hit {
		return g.gap, g.ok
	}
	gap, ok := measureScheduleGap(schedule)
	gapCache.Lock()
	if len(gapCache.m) < gapCacheSize {
		gapCache.m[schedule] = scheduleGap{gap, ok}
	}
	gapCache.Unlock()
	return gap, ok
}

// scheduleGap is a memoized answer of longestScheduleGap.
type scheduleGap struct {
	gap time.Duration
	ok  bool
}

// gapCache memoizes longestScheduleGap, a function of the schedule string
// alone (a few hundred microseconds per measurement, and a cluster uses few
// distinct schedules). Bounded so odd schedules cannot grow it without end.
var gapCache = struct {
	sync.Mutex
	m map[string]scheduleGap
}{m: map[string]scheduleGap{}}

const gapCacheSize = 1024

// measureScheduleGap does longestScheduleGap's work.
func measureScheduleGap(schedule string) (time.Duration, bool) {
	parsed, err := cron.ParseStandard(schedule)
	if err != nil {
		return 0, false
	}
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		// @every: a constant delay, which the CRD does not admit.
		return 0, false
	}
	// ParseStandard uses the process's time zone unless told otherwise;
	// render must not depend on it.
	spec.Location = time.UTC

	const day = 24 * time.Hour
	first := spec.Next(scheduleReference.Add(-time.Second))
	if first.IsZero() {
		return 0, false
	}
	firstDay := first.Truncate(day)
	var times []time.Duration
	for t := first; !t.IsZero() && t.Before(firstDay.Add(day)); t = spec.Next(t) {
		times = append(times, t.Sub(firstDay))
	}
	var longest time.Duration
	for i := 1; i < len(times); i++ {
		longest = max(longest, times[i]-times[i-1])
	}

	end := scheduleReference.AddDate(scheduleWindowYears, 0, 0)
	prevDay := firstDay
	for prevDay.Before(end) {
		next := spec.Next(prevDay.Add(day - time.Second))
		if next.IsZero() {
			break
		}
		nextDay := next.Truncate(day)
		longest = max(longest, nextDay.Add(times[0]).Sub(prevDay.Add(times[len(times)-1])))
		prevDay = nextDay
	}
	if longest == 0 {
		// One activation in the whole window: there is no gap to measure.
		return 0, false
	}
	return longest, true
}
