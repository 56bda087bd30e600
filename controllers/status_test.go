package controllers

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
)

func TestConditions(t *testing.T) {
	serving := func(role string) workloadFacts {
		return workloadFacts{role: role, exists: true, desired: 2, available: 2, rolledOut: true}
	}
	rolling := func(role string, available int32) workloadFacts {
		return workloadFacts{role: role, exists: true, desired: 2, available: available, rolledOut: false}
	}
	all := func(w ...workloadFacts) []workloadFacts { return w }
	failed := &batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit"}

	type want struct {
		ready, progressing, degraded string // "Status/Reason"
	}
	tests := []struct {
		name  string
		facts statusFacts
		want  want
	}{
		{"no migration yet", statusFacts{migration: migration{pending: true, target: "parley:1"}},
			want{"False/Migrating", "True/Migrating", "False/AsExpected"}},
		{"serving and stable", statusFacts{image: "parley:1", workloads: all(serving("core"), serving("notification"), serving("gateway"))},
			want{"True/AllWorkloadsReady", "False/Stable", "False/AsExpected"}},
		{"rollout with every pod available stays ready", statusFacts{image: "parley:1", workloads: all(rolling("core", 2), serving("notification"), rolling("gateway", 3))},
			want{"True/AllWorkloadsReady", "True/RollingOut", "False/AsExpected"}},
		{"rollout below the desired count", statusFacts{image: "parley:1", workloads: all(rolling("core", 1), serving("notification"), serving("gateway"))},
			want{"False/WorkloadsNotReady", "True/RollingOut", "False/AsExpected"}},
		{"scaled up, new pods not available yet", statusFacts{image: "parley:1", workloads: all(serving("core"), serving("notification"),
			workloadFacts{role: "gateway", exists: true, desired: 5, available: 2, rolledOut: false})},
			want{"False/WorkloadsNotReady", "True/RollingOut", "False/AsExpected"}},
		{"a workload not created yet", statusFacts{image: "parley:1", workloads: all(serving("core"), serving("notification"), workloadFacts{role: "gateway"})},
			want{"False/WorkloadsNotReady", "False/Stable", "False/AsExpected"}},
		{"managed dependency not ready", statusFacts{image: "parley:1", workloads: all(serving("core")), depsNotReady: []string{"postgres"}},
			want{"False/WorkloadsNotReady", "False/Stable", "False/AsExpected"}},
		{"upgrade migrating while serving", statusFacts{image: "parley:1", migration: migration{pending: true, target: "parley:2", running: "parley:1"}, workloads: all(serving("core"))},
			want{"True/AllWorkloadsReady", "True/Migrating", "False/AsExpected"}},
		{"failed migration keeps serving", statusFacts{image: "parley:1", migration: migration{failed: failed, target: "parley:2", running: "parley:1"}, workloads: all(serving("core"))},
			want{"True/AllWorkloadsReady", "False/Stable", "True/MigrationFailed"}},
		{"secret missing before the first migration", statusFacts{migration: migration{target: "parley:1", secretsMissing: []string{"secret ns/pg not found (needed by migrate)"}}},
			want{"False/SecretMissing", "False/Stable", "True/SecretMissing"}},
		{"secret missing while serving", statusFacts{image: "parley:1", migration: migration{running: "parley:1", secretsMissing: []string{"secret ns/pg has no key url (needed by core)"}}, workloads: all(serving("core"))},
			want{"True/AllWorkloadsReady", "False/Stable", "True/SecretMissing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.facts.generation = 7
			got := map[string]metav1.Condition{}
			for _, c := range conditions(tt.facts) {
				if c.ObservedGeneration != 7 || c.Message == "" {
					t.Errorf("%s: generation %d, message %q", c.Type, c.ObservedGeneration, c.Message)
				}
				got[c.Type] = c
			}
			for typ, w := range map[string]string{
				chatv1alpha1.ConditionReady: tt.want.ready, chatv1alpha1.ConditionProgressing: tt.want.progressing, chatv1alpha1.ConditionDegraded: tt.want.degraded,
			} {
				c := got[typ]
				if s := string(c.Status) + "/" + c.Reason; s != w {
					t.Errorf("%s = %s (%s), want %s", typ, s, c.Message, w)
				}
			}
		})
	}
}

// TestUserMessageDropsStructDiffs: the API server appends a Go struct diff to some
// refusals (an immutable claim spec); conditions and events show its reasons only.
func TestUserMessageDropsStructDiffs(t *testing.T) {
	diff := "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n  core.PersistentVolumeClaimSpec{\n  \tAccessModes: {\"ReadWriteMany\"},\n- \tStorageClassName: &\"fast\",\n+ \tStorageClassName: &\"slow\",\n  }\n"
	refused := apierrors.NewInvalid(schema.GroupKind{Kind: "PersistentVolumeClaim"}, "chat-files", field.ErrorList{
		field.Forbidden(field.NewPath("spec"), diff),
	})
	err := errorsJoin(
		wrap("apply PersistentVolumeClaim chat-files", refused),
		wrap("get deployment core", apierrors.NewServiceUnavailable("etcd is\nunhappy")),
	)
	msg := userMessage(err)
	for _, bad := range []string{"\n", "PersistentVolumeClaimSpec", "{", "&"} {
		if strings.Contains(msg, bad) {
			t.Errorf("message holds %q: %q", bad, msg)
		}
	}
	for _, want := range []string{"apply PersistentVolumeClaim chat-files", "spec: Forbidden: spec is immutable after creation", "delete the claim chat-files", "get deployment core: etcd is"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}

func wrap(context string, err error) error { return fmt.Errorf("%s: %w", context, err) }

func errorsJoin(errs ...error) error { return errors.Join(errs...) }
