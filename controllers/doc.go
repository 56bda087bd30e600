// Package controllers holds the ChatCluster reconciler: one server-side-apply step per
// owned object, status conditions, and migration-gated upgrades.
package controllers
