#!/usr/bin/env bash
# Build the agent container image and push it to ECR in the current account and Region.
# Prints the image URI to pass as the AgentImageUri parameter.
#
#   infra/build_and_push_image.sh [--repository NAME] [--tag TAG] [--platform linux/amd64|linux/arm64]
#                                 [--region REGION]
#
# Defaults: repository "livekit-agent" (created if missing: scan on push, immutable tags,
# keeps the last 30 images), tag = the git commit (plus a timestamp when the tree has changes),
# platform linux/amd64 (AgentCpuArchitecture X86_64; linux/arm64 goes with ARM64).
# Needs: aws CLI v2 with credentials, docker, git. DOCKERFILE and CONTEXT override where the
# image is built from (default agent_container/Dockerfile with the repository root as context,
# because the worker imports control_plane from functions/).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repository="livekit-agent"
tag=""
platform="linux/amd64"
region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
dockerfile="${DOCKERFILE:-$root/agent_container/Dockerfile}"
context="${CONTEXT:-$root}"

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --repository) repository="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --platform) platform="$2"; shift 2 ;;
    --region) region="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

step() { printf '==> %s\n' "$*" >&2; }

for tool in aws docker git; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed" >&2; exit 1; }
done
[[ -f "$dockerfile" ]] || { echo "error: no Dockerfile at $dockerfile (set DOCKERFILE)" >&2; exit 1; }
case "$platform" in
  linux/amd64) architecture="X86_64" ;;
  linux/arm64) architecture="ARM64" ;;
  *) echo "error: --platform must be linux/amd64 or linux/arm64" >&2; exit 2 ;;
esac

if [[ -z "$region" ]]; then
  region="$(aws configure get region || true)"
fi
[[ -n "$region" ]] || { echo "error: no Region: pass --region or set AWS_REGION" >&2; exit 1; }

if [[ -z "$tag" ]]; then
  tag="$(git -C "$root" rev-parse --short=12 HEAD)"
  if [[ -n "$(git -C "$root" status --porcelain -- agent_container functions)" ]]; then
    tag="$tag-dirty-$(date -u +%Y%m%d%H%M%S)"
  fi
fi

account="$(aws sts get-caller-identity --query Account --output text)"
registry="$account.dkr.ecr.$region.amazonaws.com"
uri="$registry/$repository:$tag"

if ! aws ecr describe-repositories --region "$region" --repository-names "$repository" >/dev/null 2>&1; then
  step "creating ECR repository $repository in $region"
  aws ecr create-repository --region "$region" --repository-name "$repository" \
    --image-scanning-configuration scanOnPush=true \
    --image-tag-mutability IMMUTABLE \
    --encryption-configuration encryptionType=AES256 >/dev/null
  aws ecr put-lifecycle-policy --region "$region" --repository-name "$repository" --lifecycle-policy-text \
    '{"rules":[{"rulePriority":1,"description":"keep the last 30 images","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":30},"action":{"type":"expire"}}]}' \
    >/dev/null
fi

if aws ecr describe-images --region "$region" --repository-name "$repository" --image-ids "imageTag=$tag" >/dev/null 2>&1; then
  step "$uri is already in ECR (tags are immutable); not rebuilding"
else
  step "logging in to $registry"
  aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry" >/dev/null
  step "building $uri for $platform"
  docker build --platform "$platform" -f "$dockerfile" -t "$uri" "$context"
  step "pushing $uri"
  docker push "$uri"
fi

step "deploy with: AgentImageUri=$uri AgentCpuArchitecture=$architecture"
echo "$uri"
