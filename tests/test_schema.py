import json

import pytest

from rfdetr_demo.results.schema import COCO_KEYPOINT_NAMES, KeypointSchema, SchemaError, default_schema, load_schema


def test_coco_schema_matches_the_coco_file_and_has_ear_shoulder_edges(coco_json):
    cat = json.loads(coco_json.read_text())["categories"][0]
    schema = KeypointSchema.coco()
    assert schema.names == tuple(cat["keypoints"])
    assert sorted(schema.edges_one_based()) == sorted(tuple(e) for e in cat["skeleton"])
    left_ear, left_shoulder = COCO_KEYPOINT_NAMES.index("left_ear"), COCO_KEYPOINT_NAMES.index("left_shoulder")
    assert (left_ear, left_shoulder) in schema.edges


def test_load_schema_from_the_coco_annotation_file(coco_json):
    assert load_schema(coco_json) == KeypointSchema.coco()


def test_yaml_schema_with_named_edges(tmp_path):
    p = tmp_path / "hand.yaml"
    p.write_text("keypoints: [wrist, thumb, index]\nskeleton:\n  - [wrist, thumb]\n  - [0, 2]\n")
    schema = load_schema(p)
    assert schema.names == ("wrist", "thumb", "index")
    assert schema.edges == ((0, 1), (0, 2))
    assert schema.edges_one_based() == [(1, 2), (1, 3)]


def test_generic_schema_for_unknown_k_has_numbered_names_and_no_edges():
    s = default_schema(5)
    assert s.names == ("kp_0", "kp_1", "kp_2", "kp_3", "kp_4") and s.edges == ()
    assert default_schema(17) == KeypointSchema.coco()


@pytest.mark.parametrize(
    "content",
    ['{"keypoints": []}', '{"keypoints": ["a", "b"], "skeleton": [[0, 5]]}', "{not json", '["a"]'],
)
def test_bad_schema_files_raise_clear_errors(tmp_path, content):
    p = tmp_path / "s.json"
    p.write_text(content)
    with pytest.raises(SchemaError):
        load_schema(p)
