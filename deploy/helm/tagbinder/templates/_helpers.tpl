{{/* Name of the chart, or nameOverride. */}}
{{- define "tagbinder.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects: fullnameOverride, else RELEASE (when it already
contains the chart's name) or RELEASE-NAME. */}}
{{- define "tagbinder.fullname" -}}
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

{{- define "tagbinder.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tagbinder.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tagbinder.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tagbinder.labels" -}}
helm.sh/chart: {{ include "tagbinder.chart" . }}
{{ include "tagbinder.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: tagbinder
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tagbinder.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tagbinder.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" when the controller runs with --leader-election. */}}
{{- define "tagbinder.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}

{{/* The watched namespace, or "" for all namespaces. */}}
{{- define "tagbinder.watchNamespace" -}}
{{- .Values.watchNamespace | default "" }}
{{- end }}

{{/* The only namespace whose Secrets the controller reads (--credentials-namespace). */}}
{{- define "tagbinder.credentialsNamespace" -}}
{{- .Values.credentialsNamespace | default .Release.Namespace }}
{{- end }}

{{- define "tagbinder.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* RBAC rules for the watched bindings: the whole cluster's, or one namespace's. */}}
{{- define "tagbinder.bindingRules" -}}
- apiGroups: ["tagbinder.io"]
  resources: ["resourcetagbindings"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["tagbinder.io"]
  resources: ["resourcetagbindings/status"]
  verbs: ["patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* RBAC rules for TagProviders (cluster-scoped). */}}
{{- define "tagbinder.providerRules" -}}
- apiGroups: ["tagbinder.io"]
  resources: ["tagproviders"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["tagbinder.io"]
  resources: ["tagpolicies"]
  verbs: ["list", "watch"]
- apiGroups: ["tagbinder.io"]
  resources: ["tagpolicies/status"]
  verbs: ["patch"]
{{- end }}
