package controllers_test

import (
	"context"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
)

// A ChatCluster gets a status while its first reconcile has not got anywhere: with
// hundreds of ChatClusters ahead of it in the queue, `kubectl get chat` still answers.
// Here every write of the main reconcile in the namespace is held, so that reconcile
// stalls on its first child; the Pending status comes from the operator regardless, and
// the first real reconcile replaces it once the writes go through.
func TestNewClusterGetsPendingStatusBeforeItsFirstReconcile(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := namespace(t, c)
	release := writes.hold(ns)
	defer release()
	cc := externalCluster(ns, "queued")
	if err := c.Create(ctx, cc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Pending status while the first reconcile is held", func(ctx context.Context) (bool, error) {
		got, err := getCluster(ctx, c, ns, cc.Name)
		if err != nil {
			return false, err
		}
		ready := meta.FindStatusCondition(got.Status.Conditions, chatv1alpha1.ConditionReady)
		progressing := meta.FindStatusCondition(got.Status.Conditions, chatv1alpha1.ConditionProgressing)
		if ready == nil || progressing == nil {
			return false, fmt.Errorf("conditions %v", got.Status.Conditions)
		}
		if ready.Status != metav1.ConditionFalse || ready.Reason != chatv1alpha1.ReasonPending ||
			progressing.Status != metav1.ConditionTrue || progressing.Reason != chatv1alpha1.ReasonPending {
			return false, fmt.Errorf("want Ready=False and Progressing=True, both Pending: %v", got.Status.Conditions)
		}
		if got.Status.ObservedGeneration != 0 {
			return false, fmt.Errorf("observedGeneration %d before any reconcile", got.Status.ObservedGeneration)
		}
		return true, nil
	})
	for _, w := range writes.in(ns) {
		if w != "update status "+cc.Name {
			t.Fatalf("while held, the operator wrote %q", w)
		}
	}
	release()
	waitCondition(t, c, ns, cc.Name, chatv1alpha1.ConditionProgressing, metav1.ConditionTrue, chatv1alpha1.ReasonMigrating)
}
