//go:build !race

package revproxy

// raceEnabled: the tests run under the race detector, which makes stacks larger.
const raceEnabled = false
