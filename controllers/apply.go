package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
	"github.com/parleychat/parley/controllers/render"
)

// FieldOwner is the server-side-apply field manager of everything the operator applies.
const FieldOwner = "parley-operator"

// AnnotationAppliedHash records a digest of the last applied configuration. Comparing it
// catches fields the operator stopped setting, which a subset check cannot see.
const AnnotationAppliedHash = "chat.parley.dev/applied-hash"

// applier server-side applies one owned object per call and writes nothing when the live
// object already holds everything the operator would send.
type applier struct {
	client client.Client
	scheme *runtime.Scheme
}

// apply makes obj, owned by cc, exist as rendered. It returns whether it wrote.
func (a applier) apply(ctx context.Context, cc *chatv1alpha1.ChatCluster, obj client.Object) (bool, error) {
	if !render.Outlives(obj) {
		if err := controllerutil.SetControllerReference(cc, obj, a.scheme); err != nil {
			return false, fmt.Errorf("owner reference on %s: %w", obj.GetName(), err)
		}
	}
	desired, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return false, fmt.Errorf("convert %s: %w", obj.GetName(), err)
	}
	// Status is not ours to apply, and a null creationTimestamp would only add noise.
	delete(desired, "status")
	if meta, ok := desired["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	sum, err := digest(desired)
	if err != nil {
		return false, err
	}
	u := &unstructured.Unstructured{Object: desired}
	annotations := u.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[AnnotationAppliedHash] = sum
	u.SetAnnotations(annotations)

	live := reflect.New(reflect.TypeOf(obj).Elem()).Interface().(client.Object)
	if u, ok := obj.(*unstructured.Unstructured); ok {
		// Another operator's kind: the type alone does not say which.
		live.GetObjectKind().SetGroupVersionKind(u.GroupVersionKind())
	}
	switch err := a.client.Get(ctx, client.ObjectKeyFromObject(obj), live); {
	case err == nil:
		liveMap, err := runtime.DefaultUnstructuredConverter.ToUnstructured(live)
		if err != nil {
			return false, fmt.Errorf("convert live %s: %w", obj.GetName(), err)
		}
		if contains(liveMap, u.Object) {
			return false, nil
		}
	case !apierrors.IsNotFound(err):
		return false, fmt.Errorf("get %s: %w", obj.GetName(), err)
	}
	if err := a.handOffReplicas(ctx, obj, live); err != nil {
		return false, err
	}
	if err := a.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return false, fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	// The API server's answer says which object was written: a UID other than the one the
	// cache showed means the apply created it afresh (see the reconciler's recreate check).
	obj.SetUID(u.GetUID())
	return true, nil
}

// ReplicaHandoffOwner holds a Deployment's replicas between the operator letting go of
// them (autoscaling was turned on) and the HorizontalPodAutoscaler's first scale.
const ReplicaHandoffOwner = "parley-operator-replica-handoff"

// handOffReplicas keeps a running Deployment's replica count when the operator stops
// setting it. Server-side apply would otherwise remove a field its only owner dropped,
// and the API server would default the Deployment back to 1 replica until the HPA acts.
// A second field manager applies the live count first, so the field stays owned; the
// HPA's first update then takes it over.
func (a applier) handOffReplicas(ctx context.Context, obj, live client.Object) error {
	want, ok := obj.(*appsv1.Deployment)
	if !ok || want.Spec.Replicas != nil {
		return nil
	}
	have, ok := live.(*appsv1.Deployment)
	if !ok || have.ResourceVersion == "" || have.Spec.Replicas == nil || !OwnsReplicas(have, FieldOwner) {
		return nil
	}
	handoff := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]any{"name": have.Name, "namespace": have.Namespace},
		"spec":       map[string]any{"replicas": int64(*have.Spec.Replicas)},
	}}
	if err := a.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(handoff), client.FieldOwner(ReplicaHandoffOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("hand off replicas of %s: %w", have.Name, err)
	}
	return nil
}

// OwnsReplicas tells whether manager's apply owns spec.replicas.
func OwnsReplicas(d *appsv1.Deployment, manager string) bool {
	for _, mf := range d.ManagedFields {
		if mf.Manager != manager || mf.Operation != metav1.ManagedFieldsOperationApply || mf.FieldsV1 == nil {
			continue
		}
		var fields map[string]map[string]any
		if err := json.Unmarshal(mf.FieldsV1.GetRawBytes(), &fields); err != nil {
			continue
		}
		if _, ok := fields["f:spec"]["f:replicas"]; ok {
			return true
		}
	}
	return false
}

// deleteIfOwned removes obj when it exists and cc controls it; objects someone else made
// with the same name are left alone.
func (a applier) deleteIfOwned(ctx context.Context, cc *chatv1alpha1.ChatCluster, obj client.Object) (bool, error) {
	if err := a.client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		if meta.IsNoMatchError(err) {
			return false, nil // another operator's kind that is not installed: none exists
		}
		return false, client.IgnoreNotFound(err)
	}
	if !metav1IsControlledBy(obj, cc) {
		return false, nil
	}
	if err := a.client.Delete(ctx, obj, client.PropagationPolicy("Background")); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return true, nil
}

func metav1IsControlledBy(obj client.Object, owner client.Object) bool {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller && ref.UID == owner.GetUID() {
			return true
		}
	}
	return false
}

func digest(obj map[string]any) (string, error) {
	data, err := json.Marshal(obj) // maps marshal with sorted keys: stable
	if err != nil {
		return "", fmt.Errorf("digest: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16]), nil
}

// contains reports whether live holds every value of desired, as server-side apply
// would see it: maps may have more keys (another manager's), lists of named elements may
// have more elements (matched by name, in order), other lists must match element by
// element. Nil in desired is satisfied by anything, since
// apply does not send it either.
func contains(live, desired any) bool {
	switch d := desired.(type) {
	case nil:
		return true
	case map[string]any:
		l, ok := live.(map[string]any)
		if !ok {
			return len(d) == 0 && live == nil
		}
		for k, dv := range d {
			lv, ok := l[k]
			if !ok {
				if dv == nil || isEmpty(dv) {
					continue
				}
				return false
			}
			if !contains(lv, dv) {
				return false
			}
		}
		return true
	case []any:
		l, ok := live.([]any)
		if ok && namedList(d) {
			return containsNamed(l, d)
		}
		if !ok || len(l) != len(d) {
			return len(d) == 0 && live == nil
		}
		for i := range d {
			if !contains(l[i], d[i]) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(live, desired)
	}
}

// namedList reports whether every element of list is a map with a string "name": in the
// kinds the operator applies those lists are associative (env, containers, volumes,
// volumeMounts, ports, imagePullSecrets), so server-side apply merges them by key and
// keeps the elements another field manager added.
func namedList(list []any) bool {
	if len(list) == 0 {
		return false
	}
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return false
		}
		if _, ok := m["name"].(string); !ok {
			return false
		}
	}
	return true
}

// containsNamed reports whether live holds every element of desired, matched by name and
// in desired's order, as applying desired would leave it: elements of other names (an env
// var added by hand) are someone else's and apply would not touch them.
func containsNamed(live, desired []any) bool {
	next := 0
	for _, d := range desired {
		name := d.(map[string]any)["name"]
		found := false
		for next < len(live) {
			l, _ := live[next].(map[string]any)
			next++
			if l != nil && l["name"] == name {
				if !contains(l, d) {
					return false
				}
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func isEmpty(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		return len(t) == 0
	case []any:
		return len(t) == 0
	}
	return false
}
