package controllers

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
)

// firstStatusReconciler gives a new ChatCluster a status as soon as the operator sees it:
// Ready=False and Progressing=True, reason Pending. The main controller's queue can hold
// hundreds of reconciles of other ChatClusters (each a dozen API calls) ahead of a new
// one's first; this controller has a queue of its own that only new ChatClusters enter,
// so `kubectl get chat` answers within moments instead of after that backlog.
type firstStatusReconciler struct {
	client client.Client
}

// firstStatusWorkers: the work is one status write per new ChatCluster.
const firstStatusWorkers = 2

func (r *firstStatusReconciler) setupWithManager(mgr ctrl.Manager) error {
	noStatus := func(o client.Object) bool {
		cc, ok := o.(*chatv1alpha1.ChatCluster)
		return ok && len(cc.Status.Conditions) == 0
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&chatv1alpha1.ChatCluster{}, builder.WithPredicates(predicate.Funcs{
			CreateFunc:  func(e event.CreateEvent) bool { return noStatus(e.Object) },
			UpdateFunc:  func(event.UpdateEvent) bool { return false },
			DeleteFunc:  func(event.DeleteEvent) bool { return false },
			GenericFunc: func(event.GenericEvent) bool { return false },
		})).
		WithOptions(controller.Options{MaxConcurrentReconciles: firstStatusWorkers}).
		Named("chatcluster-first-status").
		Complete(r)
}

// Reconcile writes the Pending status unless some status is there already. The write
// carries the resourceVersion read, so it never overwrites the main controller's status:
// if that one wrote first, the update conflicts and there is nothing left to do.
func (r *firstStatusReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var cc chatv1alpha1.ChatCluster
	if err := r.client.Get(ctx, req.NamespacedName, &cc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if len(cc.Status.Conditions) > 0 {
		return ctrl.Result{}, nil
	}
	const msg = "accepted: the operator has queued its first reconcile; nothing is created yet"
	meta.SetStatusCondition(&cc.Status.Conditions, metav1.Condition{
		Type: chatv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: chatv1alpha1.ReasonPending, Message: msg, ObservedGeneration: cc.Generation,
	})
	meta.SetStatusCondition(&cc.Status.Conditions, metav1.Condition{
		Type: chatv1alpha1.ConditionProgressing, Status: metav1.ConditionTrue, Reason: chatv1alpha1.ReasonPending, Message: msg, ObservedGeneration: cc.Generation,
	})
	if err := r.client.Status().Update(ctx, &cc); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil // the main controller (or a delete) got there first
		}
		return ctrl.Result{}, fmt.Errorf("write the first status: %w", err)
	}
	return ctrl.Result{}, nil
}
