"""Tests of the compatibility gate (run by make test): the repository's contracts pass; incompatible
changes are rejected naming the field; a v1 reader decodes v2 data with Avro's resolution."""
import datetime
import io
import json
import os
import shutil
import sys
import tempfile
import unittest

import avro.io
import avro.schema

sys.path.insert(0, os.path.dirname(__file__))
import schema_gate  # noqa: E402

SCHEMAS = os.path.join(os.path.dirname(__file__), "..", "schemas")



def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f)

class SchemaGateTests(unittest.TestCase):
    def test_repository_contracts_pass(self):
        self.assertEqual(schema_gate.gate(os.path.join(SCHEMAS, "registry.json")), [])

    def with_v3(self, change):
        """A registry with a third transactions version made by `change` from v2; returns the gate's problems."""
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        for name in os.listdir(SCHEMAS):
            shutil.copy(os.path.join(SCHEMAS, name), d)
        v3 = read_json(os.path.join(d, "transactions.v2.avsc"))
        change(v3)
        write_json(os.path.join(d, "transactions.v3.avsc"), v3)
        reg = read_json(os.path.join(d, "registry.json"))
        reg["subjects"]["txn.events-value"].append({"version": 3, "id": 99, "schema": "transactions.v3.avsc"})
        write_json(os.path.join(d, "registry.json"), reg)
        return schema_gate.gate(os.path.join(d, "registry.json"))

    def test_a_new_field_without_default_is_rejected_by_name(self):
        problems = self.with_v3(lambda s: s["fields"].append({"name": "risk_score", "type": "double"}))
        self.assertEqual(len(problems), 1, problems)
        self.assertIn("field 'risk_score'", problems[0])
        self.assertIn("version 3 is not BACKWARD compatible with version 2", problems[0])

    def test_a_narrowed_type_is_rejected_by_name(self):
        def narrow(s):
            next(f for f in s["fields"] if f["name"] == "amount_minor")["type"] = "int"
        problems = self.with_v3(narrow)
        self.assertTrue(any("field 'amount_minor'" in p for p in problems), problems)

    def test_a_nested_change_names_the_path(self):
        def nested(s):
            geo = next(f for f in s["fields"] if f["name"] == "geo")["type"]
            geo["fields"].append({"name": "city", "type": "string"})
        problems = self.with_v3(nested)
        self.assertTrue(any("field 'geo.city'" in p for p in problems), problems)

    def test_removing_a_field_and_adding_one_with_default_pass(self):
        def ok(s):
            s["fields"] = [f for f in s["fields"] if f["name"] != "ip"]
            s["fields"].append({"name": "channel", "type": "string", "default": "card_present"})
        self.assertEqual(self.with_v3(ok), [])

    def test_duplicate_ids_and_unparsable_schemas_fail(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        with open(os.path.join(d, "bad.avsc"), "w") as f:
            f.write('{"type": "record", "name": "X", "fields": [{"name": "a"}]}')
        shutil.copy(os.path.join(SCHEMAS, "clicks.v1.avsc"), d)
        write_json(os.path.join(d, "r.json"), {"subjects": {"a": [{"version": 1, "id": 1, "schema": "bad.avsc"}],
                                                           "b": [{"version": 1, "id": 1, "schema": "clicks.v1.avsc"}]}})
        problems = schema_gate.gate(os.path.join(d, "r.json"))
        self.assertTrue(any("does not parse" in p for p in problems), problems)
        self.assertTrue(any("schema id 1 is already used" in p for p in problems), problems)

    def test_a_v1_reader_reads_v2_data(self):
        v1 = schema_gate.load(os.path.join(SCHEMAS, "transactions.v1.avsc"))
        v2 = schema_gate.load(os.path.join(SCHEMAS, "transactions.v2.avsc"))
        record = {"txn_id": "t1", "card_id": "c1", "user_id": "u1", "amount_minor": 1234, "currency": "EUR", "mcc": 5411,
                  "device_id": "d1", "ip": "10.0.0.1", "geo": {"lat": 52.5, "lon": 13.4, "country": "DE"},
                  "timestamp": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc), "merchant_id": "m9"}
        buf = io.BytesIO()
        avro.io.DatumWriter(v2).write(record, avro.io.BinaryEncoder(buf))
        buf.seek(0)
        read = avro.io.DatumReader(writers_schema=v2, readers_schema=v1).read(avro.io.BinaryDecoder(buf))
        expected = dict(record)
        del expected["merchant_id"]
        self.assertEqual(read, expected, "the unknown field is ignored")


if __name__ == "__main__":
    unittest.main()
