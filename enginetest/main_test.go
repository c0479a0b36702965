package enginetest

import (
	"fmt"
	"os"
	"testing"
)

// TestMain fails the run when any script evaluated a password: the test
// Secrets' passwords hold command substitutions that create injectedCanary
// (see newSecret).
func TestMain(m *testing.M) {
	if err := os.Remove(injectedCanary); err != nil && !os.IsNotExist(err) {
		fmt.Fprintf(os.Stderr, "enginetest: remove %s: %v\n", injectedCanary, err)
		os.Exit(1)
	}
	code := m.Run()
	if _, err := os.Stat(injectedCanary); err == nil {
		fmt.Fprintf(os.Stderr, "enginetest: %s exists: a script ran a command substitution it found in a password\n", injectedCanary)
		code = 1
	}
	os.Exit(code)
}
