"""Tests of utils.annotations: LabelMe, COCO and CVAT files written here in each tool's format, read back
to masks compared with rasters worked out by hand; the rasteriser's pixel convention; every error path."""
from __future__ import annotations

import base64
import io
import json
import math

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from utils.annotations import (
    Annotation,
    compare_rasterisers,
    grouped_split,
    polygon_area_xy,
    polygon_to_mask,
    read_coco,
    read_cvat_images,
    read_labelme,
    to_label_map,
    to_semantic,
)

H, W = 40, 50


def box_mask(x0, y0, x1, y1, height=H, width=W):
    """Pixels of columns x0..x1-1 and rows y0..y1-1 (a box whose corners lie on pixel edges)."""
    m = np.zeros((height, width), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


# --------------------------------------------------------------------------------------------------
# File writers, in each tool's own layout
# --------------------------------------------------------------------------------------------------

def labelme_shape(label, points, shape_type="polygon", group_id=None, mask=None):
    """One shape as LabelMe 5 saves it (``format_shape`` in LabelMe's app.py)."""
    return {"label": label, "points": [list(map(float, p)) for p in points], "group_id": group_id,
            "description": "", "shape_type": shape_type, "flags": {}, "mask": mask}


def write_labelme(tmp_path, shapes, name="labelme.json", **overrides):
    data = {"version": "5.5.0", "flags": {}, "shapes": shapes, "imagePath": "photo_001.jpg",
            "imageData": None, "imageHeight": H, "imageWidth": W}
    data.update(overrides)
    data = {k: v for k, v in data.items() if v is not ...}
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=2))
    return path


def png_b64(mask):
    """A bool array as LabelMe stores a mask shape: base64 of a PNG of the 0/1 uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_coco(tmp_path, images, annotations, categories=None, name="coco.json"):
    data = {"info": {"description": "test"}, "licenses": [], "images": images, "annotations": annotations,
            "categories": categories if categories is not None else
            [{"id": 1, "name": "cat", "supercategory": "animal"}, {"id": 2, "name": "dog", "supercategory": "animal"}]}
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def coco_image(image_id, name, height=H, width=W):
    return {"id": image_id, "file_name": name, "height": height, "width": width, "license": 0}


def coco_ann(ann_id, image_id, category_id, segmentation, iscrowd=0):
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "segmentation": segmentation,
            "area": 0.0, "bbox": [0, 0, 0, 0], "iscrowd": iscrowd}


CVAT_HEAD = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>7</id>
      <name>capstone</name>
      <size>2</size>
      <mode>annotation</mode>
      <overlap>0</overlap>
      <labels>
        <label><name>cat</name><type>any</type><attributes></attributes></label>
        <label><name>dog</name><type>any</type><attributes></attributes></label>
      </labels>
    </task>
    <dumped>2024-05-02 10:00:00.000000+00:00</dumped>
  </meta>
"""


def write_cvat(tmp_path, body, name="annotations.xml", head=CVAT_HEAD):
    path = tmp_path / name
    path.write_text(head + body + "</annotations>\n")
    return path


# --------------------------------------------------------------------------------------------------
# The rasteriser: pixel convention and known areas
# --------------------------------------------------------------------------------------------------

def test_rectangle_on_pixel_edges_covers_exactly_its_area():
    mask = polygon_to_mask([(2, 3), (6, 3), (6, 8), (2, 8)], 12, 12)
    assert mask.sum() == 20 == polygon_area_xy([(2, 3), (6, 3), (6, 8), (2, 8)])
    np.testing.assert_array_equal(mask, box_mask(2, 3, 6, 8, 12, 12))


@pytest.mark.parametrize("offset, columns", [(0.45, [2, 3, 4, 5]), (0.55, [3, 4, 5, 6])])
def test_a_pixel_is_in_when_its_centre_at_plus_half_is_inside(offset, columns):
    # columns c with c + 0.5 in [2 + offset, 6 + offset]
    x0, x1 = 2 + offset, 6 + offset
    mask = polygon_to_mask([(x0, 3), (x1, 3), (x1, 8), (x0, 8)], 12, 12)
    assert np.flatnonzero(mask.any(axis=0)).tolist() == columns


def test_large_right_triangle_within_one_percent_of_its_area():
    tri = [(0, 0), (200, 0), (0, 200)]
    area = polygon_area_xy(tri)
    assert area == 20000
    pixels = polygon_to_mask(tri, 256, 256).sum()
    assert abs(pixels - area) <= 0.01 * area            # 19900: half the hypotenuse's pixel centres


def test_shapes_partly_outside_are_clipped():
    mask = polygon_to_mask([(-5, -5), (10, -5), (10, 10), (-5, 10)], 20, 20)
    np.testing.assert_array_equal(mask, box_mask(0, 0, 10, 10, 20, 20))


def test_other_rasterisers_differ_by_an_edge_ring():
    # the 4 x 5 rectangle: pycocotools fills the 20 pixels whose centres are inside; OpenCV, PIL and
    # skimage put pixel centres at integers and fill the boundary too, 5 x 6 = 30 pixels
    rect = compare_rasterisers([(2, 3), (6, 3), (6, 8), (2, 8)], 12, 12)
    assert rect["pycocotools"] == {"pixels": 20, "differ": 0}
    for name in ("opencv", "pil", "skimage"):
        assert rect[name] == {"pixels": 30, "differ": 10}

    pentagon = np.array([[10.3, 8.7], [52.6, 14.2], [47.1, 55.8], [20.4, 49.5], [6.2, 30.1]])
    perimeter = np.linalg.norm(pentagon - np.roll(pentagon, 1, axis=0), axis=1).sum()
    same = compare_rasterisers(pentagon, 64, 64)
    shifted = compare_rasterisers(pentagon, 64, 64, shift_half_pixel=True)
    print(f"\npentagon, area {polygon_area_xy(pentagon):.1f} px, perimeter {perimeter:.1f} px")
    for name in same:
        print(f"{name:12s} {same[name]['pixels']:5d} px, differs from pycocotools on {same[name]['differ']:3d}; "
              f"with points moved by -0.5: {shifted[name]['differ']:3d}")
    assert abs(same["pycocotools"]["pixels"] - polygon_area_xy(pentagon)) < 0.01 * polygon_area_xy(pentagon)
    for name in ("opencv", "pil", "skimage"):
        assert 0 < same[name]["differ"] < perimeter       # at most about one ring of edge pixels
    # skimage tests pixel centres too: moved into its convention it agrees up to a few edge pixels
    assert shifted["skimage"]["differ"] <= 10 < same["skimage"]["differ"]


def test_rectangles_boxes_and_polygons_rasterise_the_same(tmp_path):
    corners = [(4.3, 6.6), (21.7, 6.6), (21.7, 17.2), (4.3, 17.2)]
    labelme = read_labelme(write_labelme(tmp_path, [
        labelme_shape("cat", corners), labelme_shape("cat", [(21.7, 17.2), (4.3, 6.6)], "rectangle")]))
    coco = read_coco(write_coco(tmp_path, [coco_image(1, "a.jpg")],
                                [coco_ann(1, 1, 1, [np.ravel(corners).tolist()])]))[0]
    cvat = read_cvat_images(write_cvat(tmp_path, f"""  <image id="0" name="a.jpg" width="{W}" height="{H}">
    <box label="cat" source="manual" occluded="0" xtl="4.30" ytl="6.60" xbr="21.70" ybr="17.20" z_order="0">
    </box>
  </image>
"""))[0]
    for mask in (labelme.masks[1], coco.masks[0], cvat.masks[0]):
        np.testing.assert_array_equal(mask, labelme.masks[0])
    np.testing.assert_array_equal(labelme.masks[0], box_mask(4, 7, 22, 17))   # centres 4.5..21.5, 7.5..16.5


# --------------------------------------------------------------------------------------------------
# LabelMe
# --------------------------------------------------------------------------------------------------

def test_read_labelme_all_shape_types(tmp_path):
    crop = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=bool)      # 3 rows x 4 columns
    shapes = [
        labelme_shape("cat", [(2, 3), (10, 3), (10, 8), (2, 8)]),                          # polygon
        labelme_shape("dog", [(10, 20), (4, 12)], "rectangle"),                             # corners reversed
        labelme_shape("cat", [(30.0, 25.0), (30.0, 15.0)], "circle"),                      # r = 10
        labelme_shape("dog", [(40, 5), (43, 7)], "mask", mask=png_b64(crop)),
        labelme_shape("cat", [(1, 1), (5, 5)], "line"),                                    # no area: skipped
        labelme_shape("cat", [(1, 1)], "point"),
    ]
    ann = read_labelme(write_labelme(tmp_path, shapes), class_ids=["cat", "dog"])
    assert isinstance(ann, Annotation)
    assert (ann.image_name, ann.height, ann.width) == ("photo_001.jpg", H, W)
    assert ann.masks.shape == (4, H, W) and ann.masks.dtype == bool
    assert ann.labels == ("cat", "dog", "cat", "dog")
    assert ann.class_ids.tolist() == [1, 2, 1, 2] and ann.class_ids.dtype == np.int64
    assert ann.iscrowd.tolist() == [False] * 4
    assert ann.source_shapes[0] == "shape 0 ('cat', polygon)"
    assert ann.skipped == ("shape 4 ('cat', line): no area", "shape 5 ('cat', point): no area")
    np.testing.assert_array_equal(ann.masks[0], box_mask(2, 3, 10, 8))
    np.testing.assert_array_equal(ann.masks[1], box_mask(4, 12, 10, 20))
    assert abs(ann.masks[2].sum() - math.pi * 100) <= 0.01 * math.pi * 100     # 314 px of 314.16
    assert ann.masks[2][25, 30] and not ann.masks[2][25, 41]
    expected = np.zeros((H, W), dtype=bool)
    expected[5:8, 40:44] = crop
    np.testing.assert_array_equal(ann.masks[3], expected)


def test_labelme_null_shape_type_is_a_polygon_and_class_ids_optional(tmp_path):
    shape = labelme_shape("weed", [(2, 3), (10, 3), (10, 8), (2, 8)])
    shape["shape_type"] = None
    ann = read_labelme(write_labelme(tmp_path, [shape]))
    assert ann.class_ids is None and ann.labels == ("weed",)
    np.testing.assert_array_equal(ann.masks[0], box_mask(2, 3, 10, 8))


def test_labelme_group_id_unites_the_parts_of_one_object(tmp_path):
    shapes = [labelme_shape("cat", [(0, 0), (4, 0), (4, 4), (0, 4)], group_id=1),
              labelme_shape("dog", [(20, 20), (24, 20), (24, 24), (20, 24)]),
              labelme_shape("cat", [(10, 0), (14, 0), (14, 4), (10, 4)], group_id=1)]
    ann = read_labelme(write_labelme(tmp_path, shapes))
    assert ann.labels == ("cat", "dog")
    np.testing.assert_array_equal(ann.masks[0], box_mask(0, 0, 4, 4) | box_mask(10, 0, 14, 4))
    assert ann.source_shapes[0] == "shapes 0+2 ('cat', group_id 1)"


def test_labelme_partly_outside_is_clipped(tmp_path):
    ann = read_labelme(write_labelme(tmp_path, [labelme_shape("cat", [(45, 35), (60, 50)], "rectangle")]))
    np.testing.assert_array_equal(ann.masks[0], box_mask(45, 35, 50, 40))


def test_labelme_unknown_label_skipped_when_asked(tmp_path):
    shapes = [labelme_shape("cat", [(2, 3), (10, 3), (10, 8)]), labelme_shape("cow", [(2, 3), (10, 3), (10, 8)])]
    ann = read_labelme(write_labelme(tmp_path, shapes), class_ids={"cat": 1}, unknown="skip")
    assert ann.labels == ("cat",)
    assert ann.skipped == ("shape 1 ('cow', polygon): unknown label",)


def test_labelme_with_no_shapes(tmp_path):
    ann = read_labelme(write_labelme(tmp_path, []))
    assert ann.masks.shape == (0, H, W) and len(ann) == 0
    assert to_label_map(ann).max() == 0


# one pytest.raises per error path; each message names the file and the shape
def test_labelme_polygon_of_two_points(tmp_path):
    path = write_labelme(tmp_path, [labelme_shape("cat", [(2, 3), (10, 3)])])
    with pytest.raises(ValueError, match=r"labelme\.json: shape 0 \('cat', polygon\): a polygon needs at least 3 "
                                         r"points, got 2"):
        read_labelme(path)


def test_labelme_unknown_label(tmp_path):
    path = write_labelme(tmp_path, [labelme_shape("cat", [(2, 3), (10, 3), (10, 8)]),
                                    labelme_shape("cow", [(2, 3), (10, 3), (10, 8)])])
    with pytest.raises(ValueError, match=r"labelme\.json: shape 1 \('cow', polygon\): unknown label 'cow'; "
                                         r"`class_ids` knows 'cat', 'dog'"):
        read_labelme(path, class_ids=["cat", "dog"])


def test_labelme_shape_wholly_outside(tmp_path):
    path = write_labelme(tmp_path, [labelme_shape("cat", [(60, 5), (70, 5), (70, 9)])])
    with pytest.raises(ValueError, match=r"labelme\.json: shape 0 \('cat', polygon\): lies wholly outside the "
                                         r"50x40 image"):
        read_labelme(path)


def test_labelme_shape_covering_no_pixel(tmp_path):
    path = write_labelme(tmp_path, [labelme_shape("cat", [(2.1, 3.1), (2.3, 3.1), (2.2, 3.3)])])
    with pytest.raises(ValueError, match=r"labelme\.json: shape 0 \('cat', polygon\): covers no pixel"):
        read_labelme(path)


def test_labelme_malformed_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"shapes": [ {"label": "cat", ')
    with pytest.raises(ValueError, match=r"broken\.json: not valid JSON"):
        read_labelme(path)


def test_labelme_missing_image_size(tmp_path):
    path = write_labelme(tmp_path, [], imageHeight=...)
    with pytest.raises(ValueError, match=r"labelme\.json: missing image size: no 'imageHeight'"):
        read_labelme(path)


def test_labelme_unknown_shape_type(tmp_path):
    path = write_labelme(tmp_path, [labelme_shape("cat", [(2, 3), (10, 3)], "cuboid")])
    with pytest.raises(ValueError, match=r"labelme\.json: shape 0 \('cat', cuboid\): unknown shape_type"):
        read_labelme(path)


def test_labelme_rectangle_of_three_points(tmp_path):
    path = write_labelme(tmp_path, [labelme_shape("cat", [(2, 3), (10, 3), (10, 8)], "rectangle")])
    with pytest.raises(ValueError, match=r"shape 0 \('cat', rectangle\): a rectangle needs exactly 2 points"):
        read_labelme(path)


def test_labelme_mask_not_fitting_its_corners(tmp_path):
    path = write_labelme(tmp_path, [labelme_shape("cat", [(10, 10), (14, 12)], "mask",
                                                  mask=png_b64(np.ones((2, 2), dtype=bool)))])
    with pytest.raises(ValueError, match=r"shape 0 \('cat', mask\): its mask is 2x2 pixels, but its corners"):
        read_labelme(path)


def test_labelme_not_a_labelme_file(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match=r"other\.json: not a LabelMe file"):
        read_labelme(path)


@pytest.mark.parametrize("class_ids, message", [
    ({"cat": 0}, r"`class_ids` must map names to ints >= 1"),
    (["cat", "cat"], r"`class_ids` as a sequence must hold distinct label names"),
    ("cat", r"`class_ids` must be None, a \{name: id\} dict or a list of names"),
])
def test_bad_class_ids(tmp_path, class_ids, message):
    with pytest.raises(ValueError, match=message):
        read_labelme(write_labelme(tmp_path, []), class_ids=class_ids)


def test_bad_unknown(tmp_path):
    with pytest.raises(ValueError, match=r"`unknown` must be 'error' or 'skip', got 'ignore'"):
        read_labelme(write_labelme(tmp_path, []), unknown="ignore")


# --------------------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------------------

def coco_fixture(tmp_path):
    """Three images: polygons (two parts), an uncompressed RLE, a compressed RLE, a crowd, and none."""
    h, w = 6, 5
    rle_mask = np.zeros((h, w), dtype=bool)
    rle_mask[1:4, 2] = True                 # column 2, rows 1..3
    rle_mask[2, 3] = True
    # column-major runs: column 0 and 1 (12 px) + row 0 of column 2 -> 13 background, then rows 1..3
    # (3 fg), rows 4, 5 of column 2 and rows 0, 1 of column 3 (4 bg), row 2 (1 fg), the rest (9 bg)
    uncompressed = {"counts": [13, 3, 4, 1, 9], "size": [h, w]}
    rng = np.random.default_rng(3)
    blob = rng.random((H, W)) < 0.3
    compressed = mask_utils.encode(np.asfortranarray(blob.astype(np.uint8)))
    compressed = {"counts": compressed["counts"].decode("ascii"), "size": compressed["size"]}
    crowd = np.zeros((H, W), dtype=bool)
    crowd[30:40, 0:20] = True
    crowd_rle = mask_utils.encode(np.asfortranarray(crowd.astype(np.uint8)))
    crowd_rle = {"counts": crowd_rle["counts"].decode("ascii"), "size": crowd_rle["size"]}
    images = [coco_image(10, "field_a/001.jpg"), coco_image(11, "small.png", h, w),
              coco_image(12, "empty.jpg")]
    anns = [coco_ann(1, 10, 1, [[2, 3, 10, 3, 10, 8, 2, 8], [20, 20, 25, 20, 25, 30, 20, 30]]),
            coco_ann(2, 11, 2, uncompressed),
            coco_ann(3, 10, 2, compressed),
            coco_ann(4, 10, 1, crowd_rle, iscrowd=1)]
    return write_coco(tmp_path, images, anns), rle_mask, blob, crowd


def test_read_coco(tmp_path):
    path, rle_mask, blob, crowd = coco_fixture(tmp_path)
    first, small, empty = read_coco(path, class_ids={"cat": 1, "dog": 2})
    assert first.image_name == "field_a/001.jpg" and first.labels == ("cat", "dog", "cat")
    assert first.iscrowd.tolist() == [False, False, True]
    assert first.class_ids.tolist() == [1, 2, 1]
    assert first.source_shapes[1] == "annotation 2 (id 3, 'dog', RLE)"
    np.testing.assert_array_equal(first.masks[0], box_mask(2, 3, 10, 8) | box_mask(20, 20, 25, 30))
    np.testing.assert_array_equal(first.masks[1], blob)
    np.testing.assert_array_equal(first.masks[2], crowd)
    assert (small.height, small.width) == (6, 5)
    np.testing.assert_array_equal(small.masks[0], rle_mask)
    assert empty.masks.shape == (0, H, W)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")   # pycocotools under NumPy 2
def test_coco_rle_decoding_agrees_with_pycocotools(tmp_path):
    rng = np.random.default_rng(0)
    anns, truth = [], []
    for k in range(20):
        m = rng.random((H, W)) < rng.uniform(0.01, 0.9)
        m[k, k] = True
        rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        anns.append(coco_ann(k + 1, 1, 1, {"counts": rle["counts"].decode("ascii"), "size": rle["size"]}))
        truth.append(mask_utils.decode(rle).astype(bool))
    (ann,) = read_coco(write_coco(tmp_path, [coco_image(1, "a.jpg")], anns))
    np.testing.assert_array_equal(ann.masks, np.stack(truth))


def test_coco_unknown_image_id(tmp_path):
    path = write_coco(tmp_path, [coco_image(1, "a.jpg")], [coco_ann(5, 99, 1, [[2, 3, 10, 3, 10, 8]])])
    with pytest.raises(ValueError, match=r"coco\.json: annotation 0 \(id 5\): its image_id 99 is not among the "
                                         r"file's 1 images"):
        read_coco(path)


def test_coco_unknown_category_id(tmp_path):
    path = write_coco(tmp_path, [coco_image(1, "a.jpg")], [coco_ann(5, 1, 7, [[2, 3, 10, 3, 10, 8]])])
    with pytest.raises(ValueError, match=r"coco\.json: annotation 0 \(id 5\): its category_id 7"):
        read_coco(path)


def test_coco_rle_runs_not_filling_the_size(tmp_path):
    path = write_coco(tmp_path, [coco_image(1, "a.jpg", 6, 5)],
                      [coco_ann(5, 1, 1, {"counts": [13, 3, 4, 1, 8], "size": [6, 5]})])
    with pytest.raises(ValueError, match=r"coco\.json: annotation 0 \(id 5, 'cat', RLE\): RLE runs add up to 29 "
                                         r"pixels, but its size holds 30"):
        read_coco(path)


def test_coco_compressed_rle_of_another_size(tmp_path):
    rle = mask_utils.encode(np.asfortranarray(np.ones((6, 4), dtype=np.uint8)))
    path = write_coco(tmp_path, [coco_image(1, "a.jpg", 6, 5)],
                      [coco_ann(5, 1, 1, {"counts": rle["counts"].decode("ascii"), "size": [6, 5]})])
    with pytest.raises(ValueError, match=r"annotation 0 \(id 5, 'cat', RLE\): RLE runs add up to 24 pixels, "
                                         r"but its size holds 30"):
        read_coco(path)


def test_coco_rle_size_not_the_images(tmp_path):
    path = write_coco(tmp_path, [coco_image(1, "a.jpg", 6, 5)],
                      [coco_ann(5, 1, 1, {"counts": [30], "size": [5, 6]})])
    with pytest.raises(ValueError, match=r"annotation 0 \(id 5, 'cat', RLE\): RLE size \[5, 6\] \(height, width\) "
                                         r"is not the image's \[6, 5\]"):
        read_coco(path)


def test_coco_polygon_of_two_points(tmp_path):
    path = write_coco(tmp_path, [coco_image(1, "a.jpg")], [coco_ann(5, 1, 2, [[2, 3, 10, 3]])])
    with pytest.raises(ValueError, match=r"coco\.json: annotation 0 \(id 5, 'dog', polygon\): polygon part 0 has 2 "
                                         r"points; a polygon needs at least 3"):
        read_coco(path)


def test_coco_missing_image_size(tmp_path):
    image = coco_image(1, "a.jpg")
    del image["height"]
    path = write_coco(tmp_path, [image], [])
    with pytest.raises(ValueError, match=r"coco\.json: image 0 \(id 1, 'a\.jpg'\): missing image size: no 'height'"):
        read_coco(path)


def test_coco_unknown_label(tmp_path):
    path = write_coco(tmp_path, [coco_image(1, "a.jpg")], [coco_ann(5, 1, 2, [[2, 3, 10, 3, 10, 8]])])
    with pytest.raises(ValueError, match=r"coco\.json: annotation 0 \(id 5, 'dog', polygon\): unknown label 'dog'"):
        read_coco(path, class_ids=["cat"])


def test_coco_empty_rle(tmp_path):
    path = write_coco(tmp_path, [coco_image(1, "a.jpg", 6, 5)],
                      [coco_ann(5, 1, 1, {"counts": [30], "size": [6, 5]})])
    with pytest.raises(ValueError, match=r"coco\.json: annotation 0 \(id 5, 'cat', RLE\): the RLE marks no pixel"):
        read_coco(path)


def test_coco_polygon_wholly_outside(tmp_path):
    path = write_coco(tmp_path, [coco_image(1, "a.jpg")], [coco_ann(5, 1, 1, [[-9, -9, -2, -9, -2, -3]])])
    with pytest.raises(ValueError, match=r"annotation 0 \(id 5, 'cat', polygon\): lies wholly outside"):
        read_coco(path)


def test_coco_malformed_json(tmp_path):
    path = tmp_path / "coco.json"
    path.write_text('{"images": [}')
    with pytest.raises(ValueError, match=r"coco\.json: not valid JSON"):
        read_coco(path)


def test_coco_without_annotations_list(tmp_path):
    path = tmp_path / "coco.json"
    path.write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(ValueError, match=r"coco\.json: not a COCO instances file \(no 'annotations' list"):
        read_coco(path)


# --------------------------------------------------------------------------------------------------
# CVAT for images 1.1
# --------------------------------------------------------------------------------------------------

# the mask of CVAT's own XML format page (13 x 15 pixels at left 707, top 888 of a 1600 x 1200 image)
CVAT_DOC_RLE = "3, 5, 7, 7, 5, 9, 3, 11, 2, 11, 2, 12, 1, 12, 1, 26, 1, 12, 1, 12, 2, 11, 3, 9, 5, 7, 7, 5, 3"


def test_read_cvat_images(tmp_path):
    # the crop (2 rows x 3 columns) [[1, 1, 0], [0, 1, 1]], row-major and background first: 0, 2, 2, 2
    body = f"""  <image id="0" name="plot_07/img_001.jpg" width="{W}" height="{H}">
    <polygon label="cat" source="manual" occluded="0" points="2.00,3.00;10.00,3.00;10.00,8.00;2.00,8.00" z_order="1">
    </polygon>
    <box label="dog" source="manual" occluded="0" xtl="4.00" ytl="12.00" xbr="10.00" ybr="20.00" z_order="0">
      <attribute name="pose">sitting</attribute>
    </box>
    <polyline label="cat" source="manual" occluded="0" points="1.00,1.00;5.00,5.00" z_order="0">
    </polyline>
    <mask label="dog" source="manual" occluded="0" rle="0, 2, 2, 2" left="30" top="20" width="3" height="2" z_order="2">
    </mask>
    <tag label="cat" source="manual">
    </tag>
  </image>
  <image id="1" name="plot_07/img_002.jpg" width="1600" height="1200">
    <mask label="cat" source="manual" occluded="0" rle="{CVAT_DOC_RLE}"
          left="707" top="888" width="13" height="15" z_order="0">
    </mask>
  </image>
"""
    first, second = read_cvat_images(write_cvat(tmp_path, body), class_ids=["cat", "dog"])
    assert first.image_name == "plot_07/img_001.jpg" and (first.height, first.width) == (H, W)
    # ordered by z_order: the box (0), the polygon (1), the mask (2)
    assert first.labels == ("dog", "cat", "dog") and first.class_ids.tolist() == [2, 1, 2]
    assert first.source_shapes == ("element 1 (<box> 'dog')", "element 0 (<polygon> 'cat')",
                                   "element 3 (<mask> 'dog')")
    assert first.skipped == ("element 2 (<polyline> 'cat'): no area", "element 4 (<tag> 'cat'): no area")
    np.testing.assert_array_equal(first.masks[0], box_mask(4, 12, 10, 20))
    np.testing.assert_array_equal(first.masks[1], box_mask(2, 3, 10, 8))
    expected = np.zeros((H, W), dtype=bool)
    expected[20:22, 30:33] = [[1, 1, 0], [0, 1, 1]]
    np.testing.assert_array_equal(first.masks[2], expected)

    runs = [int(v) for v in CVAT_DOC_RLE.split(",")]
    (doc,) = second.masks
    assert doc.sum() == sum(runs[1::2])
    rows, cols = np.flatnonzero(doc.any(axis=1)), np.flatnonzero(doc.any(axis=0))
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (888, 902, 707, 719)
    assert doc[888, 707 + 3: 707 + 8].all() and not doc[888, 707 + 2] and not doc[888, 707 + 8]   # 3 bg, 5 fg


def test_cvat_rotated_box_and_ellipse(tmp_path):
    body = f"""  <image id="0" name="a.jpg" width="{W}" height="{H}">
    <box label="cat" source="manual" occluded="0" xtl="10.00" ytl="10.00" xbr="30.00" ybr="20.00"
         rotation="90.00" z_order="0">
    </box>
    <ellipse label="dog" source="manual" occluded="0" cx="25.00" cy="20.00" rx="15.00" ry="8.00" z_order="0">
    </ellipse>
  </image>
"""
    (ann,) = read_cvat_images(write_cvat(tmp_path, body))
    # a 20 x 10 box turned by 90 degrees about its centre (20, 15): x 15..25, y 5..25
    np.testing.assert_array_equal(ann.masks[0], box_mask(15, 5, 25, 25))
    assert abs(ann.masks[1].sum() - math.pi * 15 * 8) <= 0.01 * math.pi * 15 * 8


def test_cvat_mask_partly_outside_is_clipped(tmp_path):
    body = f"""  <image id="0" name="a.jpg" width="{W}" height="{H}">
    <mask label="cat" source="manual" occluded="0" rle="0, 6" left="48" top="39" width="3" height="2" z_order="0">
    </mask>
  </image>
"""
    (ann,) = read_cvat_images(write_cvat(tmp_path, body))
    np.testing.assert_array_equal(ann.masks[0], box_mask(48, 39, 50, 40))


def one_image(shape_xml, width=W, height=H):
    return f"""  <image id="3" name="b.jpg" width="{width}" height="{height}">
    {shape_xml}
  </image>
"""


def test_cvat_polygon_of_two_points(tmp_path):
    path = write_cvat(tmp_path, one_image('<polygon label="cat" points="2.00,3.00;10.00,3.00" z_order="0"/>'))
    with pytest.raises(ValueError, match=r"annotations\.xml: image 0 \(id 3, 'b\.jpg'\), element 0 \(<polygon> "
                                         r"'cat'\): a polygon needs at least 3 points, got 2"):
        read_cvat_images(path)


def test_cvat_mask_runs_not_filling_its_box(tmp_path):
    path = write_cvat(tmp_path, one_image('<mask label="cat" rle="0, 2, 2" left="3" top="4" width="3" '
                                          'height="2" z_order="0"/>'))
    with pytest.raises(ValueError, match=r"annotations\.xml: image 0 \(id 3, 'b\.jpg'\), element 0 \(<mask> 'cat'\): "
                                         r"RLE runs add up to 4 pixels, but its size holds 6"):
        read_cvat_images(path)


def test_cvat_unknown_label(tmp_path):
    path = write_cvat(tmp_path, one_image('<box label="cow" xtl="1" ytl="1" xbr="5" ybr="5" z_order="0"/>'))
    with pytest.raises(ValueError, match=r"element 0 \(<box> 'cow'\): unknown label 'cow'"):
        read_cvat_images(path, class_ids={"cat": 1, "dog": 2})


def test_cvat_box_wholly_outside(tmp_path):
    path = write_cvat(tmp_path, one_image('<box label="cat" xtl="60" ytl="1" xbr="70" ybr="5" z_order="0"/>'))
    with pytest.raises(ValueError, match=r"annotations\.xml: image 0 \(id 3, 'b\.jpg'\), element 0 \(<box> 'cat'\): "
                                         r"lies wholly outside the 50x40 image"):
        read_cvat_images(path)


def test_cvat_mask_wholly_outside(tmp_path):
    path = write_cvat(tmp_path, one_image('<mask label="cat" rle="0, 4" left="60" top="4" width="2" height="2"/>'))
    with pytest.raises(ValueError, match=r"element 0 \(<mask> 'cat'\): lies wholly outside"):
        read_cvat_images(path)


def test_cvat_missing_image_size(tmp_path):
    path = write_cvat(tmp_path, '  <image id="3" name="b.jpg" width="50">\n  </image>\n')
    with pytest.raises(ValueError, match=r"annotations\.xml: image 0 \(id 3, 'b\.jpg'\): missing image size: no "
                                         r"'height'"):
        read_cvat_images(path)


def test_cvat_malformed_xml(tmp_path):
    path = write_cvat(tmp_path, '  <image id="3" name="b.jpg" width="50" height="40">\n')
    with pytest.raises(ValueError, match=r"annotations\.xml: not valid XML"):
        read_cvat_images(path)


def test_cvat_video_export(tmp_path):
    path = write_cvat(tmp_path, '  <track id="0" label="cat" source="manual">\n  </track>\n')
    with pytest.raises(ValueError, match=r"annotations\.xml: holds <track> elements, a 'CVAT for video' export"):
        read_cvat_images(path)


def test_cvat_unknown_element(tmp_path):
    path = write_cvat(tmp_path, one_image('<blob label="cat"/>'))
    with pytest.raises(ValueError, match=r"element 0 \(<blob> 'cat'\): unknown element <blob>"):
        read_cvat_images(path)


def test_cvat_not_an_annotations_file(tmp_path):
    path = tmp_path / "other.xml"
    path.write_text('<?xml version="1.0"?><annotation><object/></annotation>')
    with pytest.raises(ValueError, match=r"other\.xml: not a CVAT XML file \(the root element is <annotation>"):
        read_cvat_images(path)


# --------------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------------

def overlapping(tmp_path, **kwargs):
    shapes = [labelme_shape("cat", [(0, 0), (6, 0), (6, 4), (0, 4)]),       # object 0: columns 0..5
              labelme_shape("dog", [(4, 0), (9, 0), (9, 4), (4, 4)])]       # object 1 covers columns 4, 5
    return read_labelme(write_labelme(tmp_path, shapes), **kwargs)


def test_to_label_map_later_objects_win(tmp_path):
    labels = to_label_map(overlapping(tmp_path))
    assert labels.dtype == np.int32 and labels.shape == (H, W)
    assert labels[0, :10].tolist() == [1, 1, 1, 1, 2, 2, 2, 2, 2, 0]
    assert labels[4:].max() == 0


def test_to_label_map_leaves_crowds_out_unless_asked(tmp_path):
    path, _, _, crowd = coco_fixture(tmp_path)
    first = read_coco(path)[0]
    assert not (to_label_map(first) == 3).any()
    assert (to_label_map(first, include_crowd=True)[crowd] == 3).all()


def test_to_semantic(tmp_path):
    semantic = to_semantic(overlapping(tmp_path, class_ids={"cat": 1, "dog": 2}))
    assert semantic.dtype == np.int64
    assert semantic[0, :10].tolist() == [1, 1, 1, 1, 2, 2, 2, 2, 2, 0]
    np.testing.assert_array_equal(to_semantic(overlapping(tmp_path), {"cat": 5, "dog": 5})[0, :10] > 0,
                                  semantic[0, :10] > 0)


def test_to_semantic_needs_a_class_map(tmp_path):
    with pytest.raises(ValueError, match=r"`class_ids` is needed: 'photo_001\.jpg' was read without a class map"):
        to_semantic(overlapping(tmp_path))


def test_to_semantic_label_missing_from_the_map(tmp_path):
    with pytest.raises(ValueError, match=r"labelme\.json: 'photo_001\.jpg', shape 1 \('dog', polygon\): label 'dog' "
                                         r"is not in `class_ids`"):
        to_semantic(overlapping(tmp_path), class_ids=["cat"])


def test_targets_need_an_annotation():
    with pytest.raises(ValueError, match=r"`annotation` must be an Annotation .* got ndarray"):
        to_label_map(np.zeros((4, 4)))


# --------------------------------------------------------------------------------------------------
# grouped_split
# --------------------------------------------------------------------------------------------------

def field_data(n_groups=20, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, n_groups)
    ids, groups = [], []
    for g, s in enumerate(sizes):
        for k in range(s):
            ids.append(f"field{g:02d}_{k}.jpg")
            groups.append(f"field{g:02d}")
    return ids, groups


def test_grouped_split_keeps_groups_whole_and_is_near_the_fractions():
    ids, groups = field_data()
    parts = grouped_split(ids, groups)
    assert len(parts) == 3 and sorted(sum(parts, [])) == sorted(ids)
    group_of = dict(zip(ids, groups))
    part_groups = [{group_of[i] for i in p} for p in parts]
    assert not (part_groups[0] & part_groups[1] or part_groups[0] & part_groups[2] or part_groups[1] & part_groups[2])
    shares = [len(p) / len(ids) for p in parts]
    assert all(abs(s - f) < 0.1 for s, f in zip(shares, (0.7, 0.15, 0.15))), shares
    for p in parts:                                   # each part keeps the order of ids
        assert p == sorted(p, key=ids.index)


def test_grouped_split_is_deterministic_and_independent_of_order():
    ids, groups = field_data()
    a = grouped_split(ids, groups, seed=3)
    assert a == grouped_split(ids, groups, seed=3)
    reverse = grouped_split(ids[::-1], groups[::-1], seed=3)
    assert [sorted(p) for p in reverse] == [sorted(p) for p in a]
    others = {tuple(map(tuple, grouped_split(ids, groups, seed=s))) for s in range(5)}
    assert len(others) > 1


def test_grouped_split_fills_every_part_even_with_few_groups():
    parts = grouped_split(list("abcdef"), [1, 1, 2, 2, 3, 3])
    assert [len(p) for p in parts] == [2, 2, 2]


def test_grouped_split_two_parts_and_an_empty_one():
    ids, groups = field_data()
    train, val, test = grouped_split(ids, groups, fractions=(0.8, 0.2, 0.0))
    assert test == [] and len(train) + len(val) == len(ids)


@pytest.mark.parametrize("kwargs, message", [
    ({"groups": ["a", "b"]}, r"`ids` and `groups` must have the same length, got 3 and 2"),
    ({"fractions": (0.7, 0.2, 0.2)}, r"`fractions` must be numbers >= 0 that sum to 1, got \(0\.7, 0\.2, 0\.2\)"),
    ({"fractions": (1.2, -0.2)}, r"`fractions` must be numbers >= 0 that sum to 1"),
    ({"fractions": ("a", "b")}, r"`fractions` must be a sequence of numbers"),
    ({"groups": ["a", "a", "b"]}, r"`groups` holds 2 distinct group\(s\), fewer than the 3 parts"),
    ({"seed": -1}, r"`seed` must be an int >= 0, got -1"),
])
def test_grouped_split_errors(kwargs, message):
    args = {"ids": ["x", "y", "z"], "groups": ["a", "b", "c"], **kwargs}
    with pytest.raises(ValueError, match=message):
        grouped_split(**args)


def test_grouped_split_repeated_ids():
    with pytest.raises(ValueError, match=r"`ids` must be distinct, got 'x' more than once"):
        grouped_split(["x", "y", "x"], ["a", "b", "c"])


def test_importing_annotations_stays_cheap():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, utils.annotations; heavy = {'torch', 'cv2', 'matplotlib', 'pycocotools', 'PIL', "
            "'skimage', 'sklearn'} & {m.split('.')[0] for m in sys.modules}; print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(Path(__file__).resolve().parent.parent))
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------
# writers: label maps to the tools' files and back
# ------------------------------------------------------------------------------------------------

def _touching_objects():
    """A label map with two touching objects, one in two pieces, and one at the image border."""
    labels = np.zeros((40, 50), np.int32)
    labels[5:15, 5:20] = 1
    labels[5:15, 20:30] = 2          # touches object 1
    labels[25:35, 2:8] = 3
    labels[30:38, 40:50] = 3         # object 3's second piece, at the right border
    yy, xx = np.mgrid[:40, :50]
    labels[(yy - 28) ** 2 + (xx - 24) ** 2 <= 36] = 4
    return labels


def test_coco_and_cvat_writers_round_trip_exactly(tmp_path):
    from utils.annotations import read_coco, read_cvat_images, to_label_map, write_coco, write_cvat_images

    labels = _touching_objects()
    for reader, path in ((read_coco, write_coco(tmp_path / "c.json", [("a.png", labels), ("b.png", labels[:20])])),
                         (read_cvat_images, write_cvat_images(tmp_path / "c.xml", [("a.png", labels),
                                                                                   ("b.png", labels[:20])]))):
        first, second = reader(path)
        assert first.image_name == "a.png" and (first.height, first.width) == labels.shape
        assert np.array_equal(to_label_map(first), labels)
        assert np.array_equal(to_label_map(second), labels[:20])


def test_labelme_writer_round_trips_up_to_the_outline(tmp_path):
    from utils.annotations import read_labelme, to_label_map, write_labelme

    labels = _touching_objects()
    exact = to_label_map(read_labelme(write_labelme(tmp_path / "a.json", "a.png", labels, "cell")))
    assert np.array_equal(exact > 0, labels > 0) and len(np.unique(exact)) == 5   # 4 objects, pieces united
    simplified = read_labelme(write_labelme(tmp_path / "b.json", "b.png", labels, "cell", tolerance=0.5))
    assert simplified.labels == ("cell",) * 4
    disc = simplified.masks[3]                                 # objects in label order; 3's pieces united
    assert abs(int(disc.sum()) - int((labels == 4).sum())) <= 0.1 * (labels == 4).sum()


def test_mask_to_polygons_traces_pixel_edges():
    from utils.annotations import mask_to_polygons_xy, polygon_area_xy, polygon_to_mask

    mask = np.zeros((10, 12), bool)
    mask[2:6, 3:9] = True                                    # 4 x 6 = 24 pixels
    (poly,) = mask_to_polygons_xy(mask)
    assert poly[:, 0].min() == 3.0 and poly[:, 0].max() == 9.0 and poly[:, 1].min() == 2.0 and poly[:, 1].max() == 6.0
    assert np.array_equal(polygon_to_mask(poly, 10, 12), mask)
    assert 24 - 2 <= polygon_area_xy(poly) <= 24             # marching squares cuts each corner by 1/8 px
    assert mask_to_polygons_xy(np.zeros((4, 4), bool)) == []


@pytest.mark.parametrize("call, match", [
    (lambda p: __import__("utils.annotations", fromlist=["x"]).write_coco(p, [("a", np.zeros((3, 3, 3), int))]),
     r"images\[0\] labels"),
    (lambda p: __import__("utils.annotations", fromlist=["x"]).write_labelme(p, "a", np.zeros((4, 4), float)),
     "`labels`"),
    (lambda p: __import__("utils.annotations", fromlist=["x"]).mask_to_polygons_xy(np.zeros((4, 4), int)), "`mask`"),
    (lambda p: __import__("utils.annotations", fromlist=["x"]).mask_to_polygons_xy(np.zeros((4, 4), bool), -1),
     "`tolerance`"),
])
def test_writers_reject_bad_input(tmp_path, call, match):
    with pytest.raises(ValueError, match=match):
        call(tmp_path / "out")
