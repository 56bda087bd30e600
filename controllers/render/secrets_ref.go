package render

import (
	chatv1alpha1 "github.com/parleychat/parley/api/v1alpha1"
)

// SecretKeyUse is one key of a Secret the spec names, and the Parley roles whose pods
// read it: a pod cannot start without it (CreateContainerConfigError).
type SecretKeyUse struct {
	Secret string
	Key    string
	Roles  []string
}

// ReferencedSecrets lists, in a stable order, the Secret keys the Parley pods of cc read
// that the operator does not generate: the ones of the spec (postgres, redis, Kafka SASL,
// S3, VAPID) and of the workloads' env. Optional references are left out, and so is the
// Ingress's TLS Secret, which pods do not read and a certificate manager creates only
// after the Ingress exists.
func ReferencedSecrets(cc *chatv1alpha1.ChatCluster) []SecretKeyUse {
	generated := map[string]bool{SigningKeyName(cc): true}
	if cc.Spec.Postgres.Managed != nil {
		generated[PostgresCredentialsName(cc)] = true
	}
	if cc.Spec.Postgres.CNPG != nil {
		// CloudNativePG creates it while bootstrapping; the migration waits for the
		// Cluster to be Ready instead.
		generated[CNPGAppSecretName(cc)] = true
	}
	var out []SecretKeyUse
	index := map[[2]string]int{}
	for _, role := range append([]string{RoleMigrate}, Workloads...) {
		w := chatv1alpha1.WorkloadSpec{}
		if role != RoleMigrate {
			w = WorkloadSpec(cc, role)
		}
		pod := parleyPod(cc, role, "", w)
		for _, c := range pod.Spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					continue
				}
				ref := e.ValueFrom.SecretKeyRef
				if generated[ref.Name] || (ref.Optional != nil && *ref.Optional) {
					continue
				}
				k := [2]string{ref.Name, ref.Key}
				if i, ok := index[k]; ok {
					if last := out[i].Roles; last[len(last)-1] != role {
						out[i].Roles = append(out[i].Roles, role)
					}
					continue
				}
				index[k] = len(out)
				out = append(out, SecretKeyUse{Secret: ref.Name, Key: ref.Key, Roles: []string{role}})
			}
		}
	}
	return out
}
