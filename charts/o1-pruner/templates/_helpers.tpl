{{/* Chart name (nameOverride wins). */}}
{{- define "o1-pruner.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "o1-pruner.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "o1-pruner.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "o1-pruner.labels" -}}
helm.sh/chart: {{ include "o1-pruner.chart" . }}
{{ include "o1-pruner.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: o1-pruner
{{- end }}

{{/* Selector labels of the operator pod. */}}
{{- define "o1-pruner.selectorLabels" -}}
app.kubernetes.io/name: {{ include "o1-pruner.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "o1-pruner.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "o1-pruner.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "o1-pruner.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "o1-pruner.trainerImage" -}}
{{- printf "%s:%s" .Values.defaults.trainer.repository (default .Chart.AppVersion .Values.defaults.trainer.tag) }}
{{- end }}

{{/* Prometheus label name of a Kubernetes pod label: __meta_kubernetes_pod_label_<sanitised>. */}}
{{- define "o1-pruner.podLabelMeta" -}}
{{- printf "__meta_kubernetes_pod_label_%s" (regexReplaceAll "[^a-zA-Z0-9_]" . "_") }}
{{- end }}

{{/* namespaceSelector of the PodMonitors: the watched namespaces, or all. */}}
{{- define "o1-pruner.namespaceSelector" -}}
{{- if .Values.watch.namespaces }}
namespaceSelector:
  matchNames:
  {{- range .Values.watch.namespaces }}
    - {{ . | quote }}
  {{- end }}
{{- else }}
namespaceSelector:
  any: true
{{- end }}
{{- end }}

{{/*
RBAC rules of the operator: exactly o1pruner_operator.rbac.REQUIRED_RULES (the operator's tests
record every API call it makes and check each is covered there). Namespaced resources: in the
ClusterRole (all namespaces) or in a Role per watched namespace. Cluster-scoped discovery (CRDs,
namespaces): always in the ClusterRole. tests/chart/test_rbac.py checks the union equals
REQUIRED_RULES. kopf runs standalone (one replica, Recreate), so no peering objects.
*/}}
{{- define "o1-pruner.namespacedRules" -}}
- apiGroups: ["o1pruner.dev"]
  resources: ["pruningjobs"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["o1pruner.dev"]
  resources: ["pruningjobs/status"]
  verbs: ["get", "patch"]
- apiGroups: ["o1pruner.dev"]
  resources: ["pruningjobs/finalizers"]
  verbs: ["update"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "create", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["trainer.kubeflow.org"]
  resources: ["trainjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["kubeflow.org"]
  resources: ["pytorchjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
{{- end }}

{{- define "o1-pruner.clusterRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
