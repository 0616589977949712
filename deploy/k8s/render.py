"""Render a kustomization of deploy/k8s/ without kubectl: the subset of Kustomize these files use.

``kubectl kustomize DIR`` is the reference (tests/deploy/test_k8s.py compares the two outputs
wherever kubectl is installed); this renderer exists so the manifests can be rendered and
validated on a machine with only the Python dev tools. It supports, and refuses anything else:
``resources`` (files, or folders holding a kustomization), ``namespace``, ``labels`` (``pairs``,
``includeTemplates``; never selectors), ``configMapGenerator`` (``files``, ``literals``; with
``generatorOptions.disableNameSuffixHash``), ``images``, ``replicas`` and ``patches`` as inline
JSON 6902 operations with a ``target``.

    python deploy/k8s/render.py deploy/k8s/overlays/production > eventpulse.yaml
"""

import copy
import sys
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

Resource = dict[str, Any]
_KNOWN = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "configMapGenerator",
    "generatorOptions",
    "images",
    "replicas",
    "patches",
}
_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume"}
_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class RenderError(ValueError):
    """The kustomization uses something this renderer does not do."""


def render(folder: Path) -> list[Resource]:
    """The resources of the kustomization in ``folder``, every transformation applied."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(spec) - _KNOWN
    if unknown:
        raise RenderError(f"{folder}: unsupported kustomization fields {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in spec.get("resources", []):
        path = folder / entry
        if path.is_dir():
            resources += render(path)
        else:
            resources += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    resources += _generate(folder, spec)
    for item in spec.get("patches", []):
        resources = [_patch(r, item) for r in resources]
    for image in spec.get("images", []):
        for resource in resources:
            _set_image(resource, image)
    for replica in spec.get("replicas", []):
        for resource in resources:
            if resource["metadata"]["name"] == replica["name"] and resource["kind"] in _WORKLOADS:
                resource["spec"]["replicas"] = replica["count"]
    for label in spec.get("labels", []):
        if label.get("includeSelectors"):
            raise RenderError("labels with includeSelectors are not supported")
        for resource in resources:
            _add_labels(resource, label["pairs"], label.get("includeTemplates", False))
    if "namespace" in spec:
        for resource in resources:
            _set_namespace(resource, spec["namespace"])
    return resources


def _generate(folder: Path, spec: dict[str, Any]) -> list[Resource]:
    generators = spec.get("configMapGenerator", [])
    if generators and not spec.get("generatorOptions", {}).get("disableNameSuffixHash"):
        raise RenderError("configMapGenerator needs generatorOptions.disableNameSuffixHash: true here")
    made = []
    for generator in generators:
        data = {Path(f).name: (folder / f).read_text() for f in generator.get("files", [])}
        data |= dict(literal.split("=", 1) for literal in generator.get("literals", []))
        made.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data})
    return made


def _matches(resource: Resource, target: dict[str, str]) -> bool:
    group, _, version = resource["apiVersion"].rpartition("/")
    wanted = {"group": group, "version": version, "kind": resource["kind"], "name": resource["metadata"]["name"]}
    unknown = set(target) - set(wanted)
    if unknown:
        raise RenderError(f"unsupported patch target fields {sorted(unknown)}")
    return all(wanted[k] == v for k, v in target.items())


def _patch(resource: Resource, item: dict[str, Any]) -> Resource:
    if set(item) != {"target", "patch"}:
        raise RenderError("only inline JSON 6902 patches with a target are supported")
    if not _matches(resource, item["target"]):
        return resource
    return jsonpatch.apply_patch(resource, yaml.safe_load(item["patch"]))


def _containers(resource: Resource) -> list[dict[str, Any]]:
    pod = resource.get("spec", {}).get("template", {}).get("spec", {})
    return pod.get("initContainers", []) + pod.get("containers", [])


def _set_image(resource: Resource, image: dict[str, str]) -> None:
    for container in _containers(resource):
        name, _, tag = container["image"].partition(":")
        if name == image["name"]:
            container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}".rstrip(":")


def _add_labels(resource: Resource, pairs: dict[str, str], templates: bool) -> None:
    resource["metadata"].setdefault("labels", {}).update(pairs)
    if templates and resource["kind"] in _WORKLOADS:
        resource["spec"]["template"].setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _set_namespace(resource: Resource, namespace: str) -> None:
    if resource["kind"] in _CLUSTER_SCOPED:
        return
    resource["metadata"]["namespace"] = namespace
    if resource["kind"] == "RoleBinding":
        for subject in resource.get("subjects", []):
            if subject.get("kind") == "ServiceAccount":
                subject["namespace"] = namespace


def to_yaml(resources: list[Resource]) -> str:
    """The rendered resources as one multi-document YAML stream."""
    return yaml.safe_dump_all([copy.deepcopy(r) for r in resources], sort_keys=True)


if __name__ == "__main__":
    sys.stdout.write(to_yaml(render(Path(sys.argv[1]))))
