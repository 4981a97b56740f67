//! Table-driven tests of the source readers: real-looking files (shapes taken from
//! dotnet-docker, GitHub's and GitLab's documentation, Azure Pipelines samples), each compared
//! through one `check(path, text, expect)` as `line:column kind [context] image => outcome`.

use super::*;

fn render(scan: &Scan) -> Vec<String> {
    let findings = scan.findings.iter().map(|finding| {
        let outcome = match &finding.resolution {
            Resolution::Image(reference) => reference.canonical(),
            Resolution::Invalid(error) => format!("invalid: {error}"),
            Resolution::Unresolved { reason } => format!("unresolved: {reason}"),
        };
        format!(
            "{}:{} {} [{}] {} => {outcome}",
            finding.position.line,
            finding.position.column,
            finding.kind,
            finding.context,
            finding.image
        )
    });
    let problems = scan.problems.iter().map(|problem| {
        format!(
            "{}:{} problem: {}",
            problem.position.line, problem.position.column, problem.message
        )
    });
    findings.chain(problems).collect()
}

#[track_caller]
fn check(path: &str, text: &str, expect: &[&str]) {
    assert_eq!(render(&scan(path, text)), expect, "{path}");
}

#[test]
fn files_are_recognized_by_path() {
    let cases = [
        ("Dockerfile", Some(Reader::Dockerfile)),
        (
            "src/aspnet/8.0/alpine3.20/amd64/Dockerfile",
            Some(Reader::Dockerfile),
        ),
        ("Containerfile", Some(Reader::Dockerfile)),
        ("build/Dockerfile.dev", Some(Reader::Dockerfile)),
        ("build/app.Dockerfile", Some(Reader::Dockerfile)),
        ("docker/release.dockerfile", Some(Reader::Dockerfile)),
        ("Dockerfile.dockerignore", None),
        ("Dockerfiles/README.md", None),
        (".Dockerfile", None),
        ("dockerfile.go", None),
        ("compose.yaml", Some(Reader::Compose)),
        ("deploy/docker-compose.override.yml", Some(Reader::Compose)),
        ("compose.prod.yml", Some(Reader::Compose)),
        (".github/workflows/ci.yml", Some(Reader::GithubActions)),
        (
            "tools/x/.github/workflows/ci.yaml",
            Some(Reader::GithubActions),
        ),
        (".github/dependabot.yml", Some(Reader::Yaml)),
        (".github/workflows/scripts/run.sh", None),
        (".gitlab-ci.yml", Some(Reader::GitlabCi)),
        ("ci/build.gitlab-ci.yml", Some(Reader::GitlabCi)),
        ("azure-pipelines.yml", Some(Reader::AzurePipelines)),
        (
            "eng/azure-pipelines-public.yaml",
            Some(Reader::AzurePipelines),
        ),
        ("deploy/web.yaml", Some(Reader::Yaml)),
        ("README.md", None),
        ("src/main.rs", None),
    ];
    for (path, expect) in cases {
        assert_eq!(recognize(path), expect, "{path}");
    }
}

/// dotnet-docker's `src/aspnet/8.0/jammy/amd64/Dockerfile` shape: a global ARG naming the
/// repository, an installer stage, then the image built on `$REPO`.
const DOTNET_ASPNET: &str = r#"ARG REPO=mcr.microsoft.com/dotnet/runtime

# Installer image
FROM amd64/buildpack-deps:jammy-curl AS installer

# Retrieve ASP.NET Core
RUN aspnetcore_version=8.0.8 \
    && curl -fSL --output aspnetcore.tar.gz https://dotnetcli.azureedge.net/dotnet/aspnetcore/Runtime/$aspnetcore_version/aspnetcore-runtime-$aspnetcore_version-linux-x64.tar.gz \
    && mkdir -p /dotnet \
    && tar -oxzf aspnetcore.tar.gz -C /dotnet ./shared/Microsoft.AspNetCore.App \
    && rm aspnetcore.tar.gz


# ASP.NET Core image
FROM $REPO:8.0.8-jammy-amd64

# ASP.NET Core version
ENV ASPNET_VERSION=8.0.8

COPY --from=installer ["/dotnet", "/usr/share/dotnet"]
"#;

/// dotnet-docker's `samples/aspnetapp/Dockerfile`: `--platform=$BUILDPLATFORM`, a named build
/// stage, `COPY --link --from=build`.
const DOTNET_SAMPLE: &str = r#"# Learn about building .NET container images:
# https://github.com/dotnet/dotnet-docker/blob/main/README.md
FROM --platform=$BUILDPLATFORM mcr.microsoft.com/dotnet/sdk:8.0 AS build
ARG TARGETARCH
WORKDIR /source

# Copy project file and restore as distinct layers
COPY --link aspnetapp/*.csproj .
RUN dotnet restore -a $TARGETARCH

# Copy source code and publish app
COPY --link aspnetapp/. .
RUN dotnet publish -a $TARGETARCH --no-restore -o /app


# Runtime stage
FROM mcr.microsoft.com/dotnet/aspnet:8.0
EXPOSE 8080
WORKDIR /app
COPY --link --from=build /app .
USER $APP_UID
ENTRYPOINT ["./aspnetapp"]
"#;

#[test]
fn dockerfiles_name_their_bases_with_arg_defaults_resolved() {
    check(
        "src/aspnet/8.0/jammy/amd64/Dockerfile",
        DOTNET_ASPNET,
        &[
            "4:6 dockerfile [stage installer] amd64/buildpack-deps:jammy-curl => \
             docker.io/amd64/buildpack-deps:jammy-curl",
            "15:6 dockerfile [stage 1] $REPO:8.0.8-jammy-amd64 => \
             mcr.microsoft.com/dotnet/runtime:8.0.8-jammy-amd64",
        ],
    );
    check(
        "samples/aspnetapp/Dockerfile",
        DOTNET_SAMPLE,
        &[
            "3:32 dockerfile [stage build] mcr.microsoft.com/dotnet/sdk:8.0 => \
             mcr.microsoft.com/dotnet/sdk:8.0",
            "17:6 dockerfile [stage 1] mcr.microsoft.com/dotnet/aspnet:8.0 => \
             mcr.microsoft.com/dotnet/aspnet:8.0",
        ],
    );
}

#[test]
fn dockerfile_cases() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "ARG defaults, braces and the :- form; quotes removed; one ARG using another",
            "ARG REGISTRY=\"mcr.microsoft.com\"\nARG IMAGE=${REGISTRY}/dotnet/sdk TAG=8.0\n\
             ARG VARIANT\nFROM ${IMAGE}:${TAG}-${VARIANT:-jammy}\n",
            &[
                "4:6 dockerfile [stage 0] ${IMAGE}:${TAG}-${VARIANT:-jammy} => \
               mcr.microsoft.com/dotnet/sdk:8.0-jammy",
            ],
        ),
        (
            "an ARG without a default, an undeclared one, a platform one: unresolved, not dropped",
            "ARG TAG\nFROM alpine:$TAG\nFROM debian:${SUITE}\nFROM golang:1.23-$TARGETARCH\n",
            &[
                "2:6 dockerfile [stage 0] alpine:$TAG => unresolved: ARG TAG has no default \
                 (the build passes it with --build-arg)",
                "3:6 dockerfile [stage 1] debian:${SUITE} => unresolved: SUITE is not \
                 declared by an ARG before the first FROM",
                "4:6 dockerfile [stage 2] golang:1.23-$TARGETARCH => unresolved: TARGETARCH \
                 is set by the builder for each target platform",
            ],
        ),
        (
            "an ARG inside a stage does not reach the next FROM (BuildKit's scoping)",
            "FROM alpine:3.20 AS base\nARG TAG=12\nFROM debian:$TAG\n",
            &[
                "1:6 dockerfile [stage base] alpine:3.20 => docker.io/library/alpine:3.20",
                "3:6 dockerfile [stage 1] debian:$TAG => unresolved: TAG is not declared by \
                 an ARG before the first FROM",
            ],
        ),
        (
            "stages and scratch are no images; stage names compare without case",
            "FROM golang:1.23 AS Build\nFROM build AS test\nFROM scratch\n\
             COPY --from=BUILD /out /app\nCOPY --from=0 /x /y\n",
            &["1:6 dockerfile [stage build] golang:1.23 => docker.io/library/golang:1.23"],
        ),
        (
            "a stage name is its valid start; a template expression is unresolved",
            "FROM {{installerImageTag}} AS installer{{if isInternal:\nARG TOKEN}}\n\
             FROM installer AS final\nCOPY --from=installer /app .\n",
            &[
                "1:6 dockerfile [stage installer] {{installerImageTag}} => unresolved: a \
               template expression filled in before the file is used",
            ],
        ),
        (
            "a stage named only later is an image here",
            "FROM app AS base\nFROM alpine AS app\n",
            &[
                "1:6 dockerfile [stage base] app => docker.io/library/app:latest",
                "2:6 dockerfile [stage app] alpine => docker.io/library/alpine:latest",
            ],
        ),
        (
            "continuation lines, comments and empty lines inside them, lowercase keywords",
            "from \\\n  # the base\n\n  --platform=linux/amd64 \\\n  quay.io/prometheus/busybox:glibc \\\n  as \
             base\n",
            &[
                "5:3 dockerfile [stage base] quay.io/prometheus/busybox:glibc => \
               quay.io/prometheus/busybox:glibc",
            ],
        ),
        (
            "the escape directive (Windows images)",
            "# escape=`\nFROM mcr.microsoft.com/windows/servercore:ltsc2022 `\n    AS base\n\
             RUN dir c:\\\nFROM base\n",
            &[
                "2:6 dockerfile [stage base] mcr.microsoft.com/windows/servercore:ltsc2022 => \
               mcr.microsoft.com/windows/servercore:ltsc2022",
            ],
        ),
        (
            "here-documents are content, not instructions",
            "FROM alpine:3.20\nCOPY <<EOF /Dockerfile\nFROM evil:1\nEOF\nRUN <<-'SCRIPT'\n\
             \tFROM nope\n\tSCRIPT\nFROM busybox:1.36\n",
            &[
                "1:6 dockerfile [stage 0] alpine:3.20 => docker.io/library/alpine:3.20",
                "8:6 dockerfile [stage 1] busybox:1.36 => docker.io/library/busybox:1.36",
            ],
        ),
        (
            "a `<<` in quotes, a shift and a here-string open no here-document",
            "FROM alpine:3.20\nRUN echo \"a<<b\" && echo $((1<<3)) && cat <<<word\n\
             FROM busybox:1.36\n",
            &[
                "1:6 dockerfile [stage 0] alpine:3.20 => docker.io/library/alpine:3.20",
                "3:6 dockerfile [stage 1] busybox:1.36 => docker.io/library/busybox:1.36",
            ],
        ),
        (
            "COPY --from an image, pinned by digest; a stage ARG resolves it",
            "FROM alpine:3.20 AS base\nARG KUBECTL=bitnami/kubectl:1.31\n\
             COPY --link --from=$KUBECTL /opt/bitnami/kubectl/bin/kubectl /usr/bin/\n\
             COPY --from=gcr.io/distroless/base@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa /x /x\n",
            &[
                "1:6 dockerfile [stage base] alpine:3.20 => docker.io/library/alpine:3.20",
                "3:20 dockerfile [stage base COPY --from] $KUBECTL => \
                 docker.io/bitnami/kubectl:1.31",
                "4:13 dockerfile [stage base COPY --from] gcr.io/distroless/base@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa => \
                 gcr.io/distroless/base@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ],
        ),
        (
            "a stage's ARG without a default inherits the global default",
            "ARG TOOLS=alpine:3.20\nFROM scratch\nARG TOOLS\nCOPY --from=${TOOLS} /bin/sh /sh\n",
            &["4:13 dockerfile [stage 0 COPY --from] ${TOOLS} => \
               docker.io/library/alpine:3.20"],
        ),
        (
            "a literal that is no reference is reported as invalid; FROM without an image",
            "FROM Ubuntu:22.04\nFROM\n",
            &[
                "1:6 dockerfile [stage 0] Ubuntu:22.04 => invalid: invalid image reference \
                 \"Ubuntu:22.04\": repository name must be lowercase",
                "2:1 problem: FROM without an image",
            ],
        ),
        (
            "a substitution berth does not evaluate, and one unclosed",
            "ARG V=1.2\nFROM alpine:${V%.*}\nFROM alpine:${V\n",
            &[
                "2:6 dockerfile [stage 0] alpine:${V%.*} => unresolved: `${V%.*}` uses a \
                 substitution berth does not evaluate",
                "3:6 dockerfile [stage 1] alpine:${V => unresolved: `alpine:${V` has an \
                 unclosed `${`",
            ],
        ),
        (
            "CRLF line endings",
            "ARG TAG=3.20\r\nFROM alpine:$TAG \\\r\n  AS base\r\n",
            &["2:6 dockerfile [stage base] alpine:$TAG => docker.io/library/alpine:3.20"],
        ),
    ];
    for (about, text, expect) in cases {
        assert_eq!(render(&scan("Dockerfile", text)), *expect, "{about}");
    }
}

#[test]
fn kubernetes_manifests_through_the_workload_reader() {
    let text = "\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  template:
    spec:
      initContainers:
        - name: migrate
          image: ghcr.io/example/migrate:1.2
      containers:
        - name: web
          image: \"ghcr.io/example/web:${TAG}\"
        - name: proxy
          imgae: envoyproxy/envoy:v1.31.0
---
# an empty document
---
apiVersion: v1
kind: List
items:
  - apiVersion: batch/v1
    kind: CronJob
    metadata: {name: report}
    spec:
      schedule: '0 3 * * *'
      jobTemplate:
        spec:
          template:
            spec:
              containers: [{name: report, image: 'busybox:1.36'}]
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: settings}
---
apiVersion: v1
kind: Pod
metadata: {name: broken}
spec:
  containers: {name: x}
---
not: kubernetes
image: nginx
";
    check(
        "deploy/web.yaml",
        text,
        &[
            "17:18 kubernetes [Deployment/web initContainer migrate] \
             ghcr.io/example/migrate:1.2 => ghcr.io/example/migrate:1.2",
            "20:18 kubernetes [Deployment/web container web] ghcr.io/example/web:${TAG} => \
             unresolved: a variable filled in when the pipeline runs",
            "38:50 kubernetes [CronJob/report container report] busybox:1.36 => \
             docker.io/library/busybox:1.36",
            "21:11 problem: Deployment/web: /spec/template/spec/containers/1: the container \
             has no `image` (Kubernetes requires one)",
            "22:18 problem: Deployment/web: /spec/template/spec/containers/1/imgae: unknown \
             field `imgae` in a container; did you mean `image`?",
            "47:15 problem: Pod: /spec/containers: expected a list",
        ],
    );
}

#[test]
fn yaml_that_is_not_manifests_is_quiet_unless_it_looks_like_them() {
    // A Helm template: not YAML, but clearly meant as manifests.
    let helm = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: {{ .Values.replicas }}\n\
                {{- if .Values.x }}\n";
    let scanned = scan("chart/templates/deployment.yaml", helm);
    assert_eq!(scanned.findings, []);
    assert_eq!(scanned.problems.len(), 1, "{scanned:?}");
    assert!(scanned.problems[0].message.starts_with("invalid YAML: "));
    // Some other tool's broken file is not berth's business.
    check("config/tool.yml", "a: [1\n", &[]);
    // A duplicate key in a workload is reported at the key.
    check(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: x}]\n\
         spec: {}\n",
        &["6:1 problem: Pod: key \"spec\" given twice"],
    );
}

#[test]
fn compose_services() {
    let text = r#"name: shop
services:
  web:
    build:
      context: .
      dockerfile: web.Dockerfile
    image: ghcr.io/example/web:${TAG:-latest}
    ports: ["8080:8080"]
  db:
    image: postgres:16-alpine
    environment:
      POSTGRES_PASSWORD: example
  cache:
    image: "redis:7"
  worker:
    build: ./worker
volumes:
  data: {}
"#;
    check(
        "compose.yaml",
        text,
        &[
            "7:12 compose [service web (built here)] ghcr.io/example/web:${TAG:-latest} => \
             unresolved: a variable filled in when the pipeline runs",
            "10:12 compose [service db] postgres:16-alpine => docker.io/library/postgres:16-alpine",
            "14:12 compose [service cache] redis:7 => docker.io/library/redis:7",
        ],
    );
    // getsentry/self-hosted's shape: services take their image from an `x-` anchor.
    check(
        "docker-compose.yml",
        "x-snuba-defaults: &snuba_defaults\n  image: \"$SNUBA_IMAGE\"\n  restart: unless-stopped\n\
         services:\n  snuba-api:\n    <<: *snuba_defaults\n  snuba-consumer:\n    <<: *snuba_defaults\n\
         \x20   image: getsentry/snuba:24.1.0\n",
        &[
            "2:10 compose [service snuba-api] $SNUBA_IMAGE => unresolved: a variable filled in \
             when the pipeline runs",
            "9:12 compose [service snuba-consumer] getsentry/snuba:24.1.0 => \
             docker.io/getsentry/snuba:24.1.0",
        ],
    );
    check(
        "docker-compose.yml",
        "services:\n  a:\n    image: [\n",
        &["4:1 problem: invalid YAML: while parsing a node, did not find expected node content"],
    );
}

#[test]
fn github_actions_containers_services_and_docker_steps() {
    let text = r#"name: CI
on:
  push:
    branches: [main]
jobs:
  test:
    runs-on: ubuntu-latest
    container:
      image: node:20-bookworm
      options: --cpus 1
    services:
      postgres:
        image: postgres:16
        env:
          POSTGRES_PASSWORD: postgres
        ports:
          - 5432:5432
      redis: redis:7-alpine
      skipped:
        image: ''
    steps:
      - uses: actions/checkout@v4
      - name: Lint Dockerfile
        uses: docker://hadolint/hadolint:v2.12.0
        with:
          args: hadolint Dockerfile
  matrix:
    strategy:
      matrix:
        image: [alpine:3.20, debian:12]
    runs-on: ubuntu-latest
    container: ${{ matrix.image }}
    steps:
      - run: cat /etc/os-release
  release:
    uses: ./.github/workflows/release.yml
"#;
    check(
        ".github/workflows/ci.yml",
        text,
        &[
            "9:14 github-actions [job test container] node:20-bookworm => \
             docker.io/library/node:20-bookworm",
            "13:16 github-actions [job test service postgres] postgres:16 => \
             docker.io/library/postgres:16",
            "18:14 github-actions [job test service redis] redis:7-alpine => \
             docker.io/library/redis:7-alpine",
            "24:15 github-actions [job test step 2] hadolint/hadolint:v2.12.0 => \
             docker.io/hadolint/hadolint:v2.12.0",
            "32:16 github-actions [job matrix container] ${{ matrix.image }} => unresolved: \
             an expression filled in when the pipeline runs",
        ],
    );
}

#[test]
fn gitlab_ci_images_and_services() {
    let text = r#"image: ruby:3.3

variables:
  POSTGRES_DB: test

default:
  image:
    name: registry.gitlab.com/gitlab-org/gitlab-build-images:ruby-3.3
    entrypoint: [""]
  services:
    - docker:24-dind

.setup:
  before_script:
    - bundle install

test:
  stage: test
  services:
    - name: postgres:16
      alias: db
    - redis:7
  script:
    - !reference [.setup, before_script]
    - bundle exec rake

build:
  image: $CI_REGISTRY/group/builder:latest
  script: docker build -t $CI_REGISTRY_IMAGE .
"#;
    check(
        ".gitlab-ci.yml",
        text,
        &[
            "1:8 gitlab-ci [global image] ruby:3.3 => docker.io/library/ruby:3.3",
            "8:11 gitlab-ci [default image] \
             registry.gitlab.com/gitlab-org/gitlab-build-images:ruby-3.3 => \
             registry.gitlab.com/gitlab-org/gitlab-build-images:ruby-3.3",
            "11:7 gitlab-ci [default service 1] docker:24-dind => \
             docker.io/library/docker:24-dind",
            "20:13 gitlab-ci [job test service db] postgres:16 => docker.io/library/postgres:16",
            "22:7 gitlab-ci [job test service 2] redis:7 => docker.io/library/redis:7",
            "28:10 gitlab-ci [job build image] $CI_REGISTRY/group/builder:latest => \
             unresolved: a variable filled in when the pipeline runs",
        ],
    );
}

#[test]
fn azure_pipelines_containers_and_resources() {
    let text = r#"trigger:
- main

resources:
  containers:
  - container: linux
    image: mcr.microsoft.com/dotnet/sdk:8.0
  - container: redis
    image: redis:7

pool:
  vmImage: ubuntu-latest

container: linux

stages:
- stage: Build
  jobs:
  - job: Test
    container: mcr.microsoft.com/dotnet/sdk:8.0-jammy
    services:
      redis: redis
    steps:
    - script: dotnet test
  - job: Windows
    container:
      image: mcr.microsoft.com/windows/servercore:ltsc2022
      endpoint: acr
- stage: Deploy
  jobs:
  - deployment: Production
    container: $(deployImage)
    environment: production
"#;
    check(
        "azure-pipelines.yml",
        text,
        &[
            "7:12 azure-pipelines [resource container linux] mcr.microsoft.com/dotnet/sdk:8.0 \
             => mcr.microsoft.com/dotnet/sdk:8.0",
            "9:12 azure-pipelines [resource container redis] redis:7 => \
             docker.io/library/redis:7",
            "20:16 azure-pipelines [stage Build job Test container] \
             mcr.microsoft.com/dotnet/sdk:8.0-jammy => mcr.microsoft.com/dotnet/sdk:8.0-jammy",
            "27:14 azure-pipelines [stage Build job Windows container] \
             mcr.microsoft.com/windows/servercore:ltsc2022 => \
             mcr.microsoft.com/windows/servercore:ltsc2022",
            "32:16 azure-pipelines [stage Deploy job Production container] $(deployImage) => \
             unresolved: a pipeline variable `$(...)` filled in when the pipeline runs",
        ],
    );
    // Jobs at the top level, and a pipeline container given inline.
    check(
        "azure-pipelines-ci.yaml",
        "container: ubuntu:24.04\njobs:\n- job: A\n  container: {image: alpine:3.20}\n",
        &[
            "1:12 azure-pipelines [pipeline container] ubuntu:24.04 => \
             docker.io/library/ubuntu:24.04",
            "4:22 azure-pipelines [job A container] alpine:3.20 => \
             docker.io/library/alpine:3.20",
        ],
    );
}

#[test]
fn files_no_reader_knows_yield_nothing() {
    check("README.md", "FROM alpine\nimage: nginx\n", &[]);
}
