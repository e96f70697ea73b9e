{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "rwscaler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every object (and of the leader-election Lease): fullnameOverride, else the
release name when it contains the chart name (release `rwscaler` -> `rwscaler`, which is what the
plain manifests in manifests/ use), else `<release>-<chart>`. Cluster-scoped objects (the
ClusterRole and ClusterRoleBinding) carry it too, so two releases never collide.
*/}}
{{- define "rwscaler.fullname" -}}
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

{{/* The leader-election Role and RoleBinding. */}}
{{- define "rwscaler.leaderElectionName" -}}
{{- printf "%s-leader-election" (include "rwscaler.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "rwscaler.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels that select the operator's pods (never change them on upgrade). */}}
{{- define "rwscaler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rwscaler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The standard labels of every object. */}}
{{- define "rwscaler.labels" -}}
helm.sh/chart: {{ include "rwscaler.chart" . }}
{{ include "rwscaler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The operator image: repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "rwscaler.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Whether the cluster serves a monitoring.coreos.com/v1 kind: "true" or "". Called with
(list $ "Kind"). A cluster's discovery lists both "monitoring.coreos.com/v1" and
"monitoring.coreos.com/v1/<Kind>"; `helm template --api-versions` passes either form.
*/}}
{{- define "rwscaler.hasMonitoringAPI" -}}
{{- $root := index . 0 }}
{{- $kind := index . 1 }}
{{- if or ($root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" $kind)) ($root.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") -}}
true
{{- end }}
{{- end }}

{{/* Whether the ServiceMonitor is rendered: "true" or "". */}}
{{- define "rwscaler.serviceMonitorOn" -}}
{{- if and .Values.metrics.enabled .Values.metrics.serviceMonitor.enabled (include "rwscaler.hasMonitoringAPI" (list . "ServiceMonitor")) -}}
true
{{- end }}
{{- end }}

{{/* Whether the PodMonitor is rendered: "true" or "". */}}
{{- define "rwscaler.podMonitorOn" -}}
{{- if and .Values.metrics.enabled .Values.metrics.podMonitor.enabled (include "rwscaler.hasMonitoringAPI" (list . "PodMonitor")) -}}
true
{{- end }}
{{- end }}

{{/*
The operator's rules on the workloads' namespaces: the same list for the ClusterRole
(every namespace) and for the Role of each namespace in watchNamespaces. Everything the
operator does and nothing more (docs/operator.md, "RBAC", explains each rule); nothing can be
deleted (owner references and the garbage collector do that).
*/}}
{{- define "rwscaler.workloadRules" -}}
# Watch the workloads; kopf records its handler progress in kopf.rwscaler.io/ annotations.
- apiGroups: ["rwscaler.io"]
  resources: ["readwriteworkloads"]
  verbs: ["get", "list", "watch", "patch"]
# Report: status (conditions, decision, memory).
- apiGroups: ["rwscaler.io"]
  resources: ["readwriteworkloads/status"]
  verbs: ["get", "patch"]
# The scale targets, only through their scale subresource (count, selector; scale): StatefulSets,
# CloudNativePG Clusters, and the kinds listed in rbac.extraScaleTargets.
- apiGroups: ["apps"]
  resources: ["statefulsets/scale"]
  verbs: ["get", "patch"]
# StatefulSets are listed once and then watched (their count and selector, instead of a GET of
# the scale subresource per tick); they are never written except through statefulsets/scale.
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["list", "watch"]
- apiGroups: ["postgresql.cnpg.io"]
  resources: ["clusters/scale"]
  verbs: ["get", "patch"]
{{- range .Values.rbac.extraScaleTargets }}
- apiGroups: [{{ .apiGroup | quote }}]
  resources: [{{ printf "%s/scale" .resource | quote }}]
  verbs: ["get", "patch"]
{{- end }}
# Observe the pods (readiness, role labels, IPs): listed once, then watched (kube/pod_cache.py).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# Prometheus credentials named in spec.prometheus (bearerTokenSecret, caSecret): read by name only.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# The EndpointSlice pooler: the selector-less read Service and its EndpointSlice, listed once and
# then watched (instead of a GET per tick).
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Events about the workloads; a repeat is counted on the Event posted before (patch).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
# The PgBouncer pooler (pooler.kind PgBouncer): find the PgBouncer Deployment's pods (their
# admin consoles), and read/write the one key of the user's ConfigMap that rwscaler owns.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "patch"]
{{- end }}
