package render

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
)

// MigrationJob runs `parley migrate` from image. Its name is derived from image, so each
// upgrade gets one Job and a retried reconcile finds the same one.
func MigrationJob(cc *chatv1alpha1.ChatCluster, image string) *batchv1.Job {
	selector := WorkloadLabels(cc, RoleMigrate)
	pod := parleyPod(cc, RoleMigrate, image, chatv1alpha1.WorkloadSpec{LogLevel: cc.Spec.LogLevel})
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	pod.Labels[LabelVersion] = LabelValue(VersionOf(image))
	return &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name: MigrationJobName(cc, image), Namespace: cc.Namespace, Labels: objectLabels(selector),
			Annotations: map[string]string{AnnotationImage: image},
		},
		Spec: batchv1.JobSpec{
			BackoffLimit:          ptr.To[int32](3),
			ActiveDeadlineSeconds: ptr.To[int64](1800),
			Template:              pod,
		},
	}
}
