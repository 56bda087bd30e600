//go:build race

package gateway

// raceEnabled scales the heaviest tests down under the race detector, which makes the
// in-process clients and JSON about ten times slower on the shared two-core machine.
const raceEnabled = true
