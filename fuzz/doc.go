// Package fuzz holds the fuzz targets over Database specs (its tests only):
// render never panics on any spec, and every spec the CRD admits renders
// children the real API server accepts, with every pod admitted under the
// restricted Pod Security profile. `make test` runs the seed corpus and a
// bounded fuzzing run; `make fuzz` runs longer. Crashers the fuzzer finds
// stay in testdata/fuzz as regression inputs.
package fuzz
