"""Checks the AppFlow definitions of tests/appflow (or of the folder given) against AppFlow's own service model, as
botocore ships it, so that they are request and answer shapes AWS takes and gives:

  *.create-flow.json        the CreateFlow request
  *.describe-flow.json      the DescribeFlow answer
  *.cloudformation.yaml     each AWS::AppFlow::Flow resource (or .json), its PascalCase properties read
                            as CloudFormation documents them (TaskProperties and Tags as
                            {Key, Value}, TriggerProperties as the schedule itself, TimeZone)
                            and checked
                            as a CreateFlow request

Types, required members and enum values are checked. Prints one line per flow checked; exits 1 with the validator's words when one is wrong.
"""

import json
import pathlib
import sys

import botocore.session
import yaml
from botocore.validate import ParamValidator

MODEL = botocore.session.get_session().get_service_model("appflow")
FOLDER = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else \
    pathlib.Path(__file__).resolve().parent.parent / "appflow"

# Below these, keys name connectors and are capitalized in the API too.
CONNECTOR_MAPS = {"SourceConnectorProperties", "DestinationConnectorProperties", "ConnectorOperator"}


class Template(yaml.SafeLoader):
    """YAML with CloudFormation's short tags, read as their JSON forms."""


def tagged(loader, suffix, node):
    value = loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else loader.construct_sequence(node)
    return {"Ref" if suffix == "Ref" else "Fn::" + suffix: value}


Template.add_multi_constructor("!", tagged)


def resolve(value, parameters):
    """A template value with its parameters' defaults put in."""
    if isinstance(value, dict) and len(value) == 1:
        (key, inner), = value.items()
        if key == "Ref":
            return parameters[inner]["Default"]
        if key == "Fn::Sub":
            for name, p in parameters.items():
                inner = inner.replace("${%s}" % name, str(p.get("Default", "")))
            return inner
    return value


def camel(value, parameters, keep=False):
    value = resolve(value, parameters)
    if isinstance(value, list):
        return [camel(v, parameters) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, v in value.items():
        name = key if keep else key[0].lower() + key[1:]
        if key == "TaskProperties":
            out[name] = {p["Key"]: resolve(p["Value"], parameters) for p in v}
        elif key == "Tags":
            out[name] = {t["Key"]: t["Value"] for t in v}
        elif key == "TriggerProperties":
            out[name] = {"Scheduled": camel(v, parameters)}
        elif key == "TimeZone":
            out["timezone"] = v
        else:
            out[name] = camel(v, parameters, keep=key in CONNECTOR_MAPS)
    return out


def enum_errors(value, shape, path):
    """Values outside a string's enum, and map keys outside the key's (botocore's own
    validator checks types and required members, not enums)."""
    out = []
    if shape.type_name == "string" and shape.enum and value not in shape.enum:
        out.append("%s: %r is not one of %s" % (path, value, ", ".join(shape.enum)))
    elif shape.type_name == "structure" and isinstance(value, dict):
        for key, v in value.items():
            if key in shape.members:
                out += enum_errors(v, shape.members[key], "%s.%s" % (path, key))
    elif shape.type_name == "list" and isinstance(value, list):
        for i, v in enumerate(value):
            out += enum_errors(v, shape.member, "%s[%d]" % (path, i))
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, v in value.items():
            out += enum_errors(key, shape.key, "%s (key)" % path)
            out += enum_errors(v, shape.value, "%s.%s" % (path, key))
    return out


def check(name, params, shape):
    report = ParamValidator().validate(params, shape)
    errors = enum_errors(params, shape, "")
    if report.has_errors() or errors:
        words = report.generate_report() if report.has_errors() else ""
        print("%s: %s" % (name, "\n".join([words] + errors).strip()))
        return False
    print("ok %s" % name)
    return True


def main():
    ok = True
    create = MODEL.operation_model("CreateFlow").input_shape
    describe = MODEL.operation_model("DescribeFlow").output_shape
    for path in sorted(FOLDER.iterdir()):
        if path.name.endswith(".create-flow.json"):
            ok &= check(path.name, json.loads(path.read_text()), create)
        elif path.name.endswith(".describe-flow.json"):
            ok &= check(path.name, json.loads(path.read_text()), describe)
        elif path.name.endswith((".cloudformation.yaml", ".cloudformation.json")):
            template = yaml.load(path.read_text(), Loader=Template)
            parameters = template.get("Parameters", {})
            for logical_id, resource in template["Resources"].items():
                if resource["Type"] == "AWS::AppFlow::Flow":
                    request = camel(resource["Properties"], parameters)
                    ok &= check("%s %s" % (path.name, logical_id), request, create)
    sys.exit(0 if ok else 1)


main()
