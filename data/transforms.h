// Image transforms for detection and classification: bilinear resize, the
// short-side/long-side resize of detection training, horizontal flip of an image
// and its boxes, random-resized-crop and colour jitter (torchvision semantics),
// conversion to float CHW, and batching with zero padding to a multiple of 32.
// Random choices come only from the Rng passed in, so a seed fixes the result.
// Boxes are float arrays (N,4) of x1,y1,x2,y2 in pixel units where pixel x covers
// [x, x+1): a box over the whole image is 0,0,W,H (COCO's x,y,w,h -> x,y,x+w,y+h).
// Not here: decoding (image.h), dataset readers and loaders, anchor/box coding.
#pragma once
#include <cstdint>
#include <vector>

#include "data/image.h"
#include "runtime/rng.h"
#include "runtime/tensor.h"

namespace detnas::data {

// Integer region of an image: columns [x, x+w), rows [y, y+h).
struct CropRect {
  int64_t x = 0, y = 0, w = 0, h = 0;
};

// Bilinear resize with half-pixel centres (OpenCV INTER_LINEAR, torch
// interpolate(mode="bilinear", align_corners=False), no antialiasing): output
// pixel (ox, oy) samples the input at ((ox+0.5)*W/Wo-0.5, (oy+0.5)*H/Ho-0.5),
// clamped to the image; results are rounded to nearest.
Image resize_bilinear(const Image& src, int64_t out_h, int64_t out_w);
// Same as crop(src, r) followed by resize_bilinear, without the intermediate copy.
Image resize_bilinear(const Image& src, CropRect r, int64_t out_h, int64_t out_w);
Image crop(const Image& src, CropRect r);

// Output size of the detection resize (maskrcnn-benchmark's Resize.get_size, as
// used by DetNAS): the short side becomes `short_side` unless the long side would
// then exceed `max_size`, in which case the short side becomes
// round(max_size * short/long) (round half to even, as Python); the long side is
// truncated: int(size * long / short). max_size <= 0 means no limit.
ImageSize short_side_size(ImageSize in, int64_t short_side, int64_t max_size);
// Multiplies x by sx and y by sy (x1,y1,x2,y2 boxes, (N,4)).
void scale_boxes(float* boxes, int64_t n, double sx, double sy);
// Resizes to short_side_size(...) and scales the boxes by new/old width and height.
Image resize_short_side(const Image& img, int64_t short_side, int64_t max_size, float* boxes = nullptr,
                        int64_t num_boxes = 0);

// Horizontal flip in place. Boxes: x1' = W - x2, x2' = W - x1.
void hflip(Image& img);
void hflip_boxes(float* boxes, int64_t n, int64_t image_width);
inline void hflip(Image& img, float* boxes, int64_t n) {
  hflip(img);
  hflip_boxes(boxes, n, img.width);
}

// torchvision RandomResizedCrop: up to 10 draws of area fraction in [scale_min,
// scale_max] and log-uniform aspect ratio w/h in [ratio_min, ratio_max]; the first
// that fits is placed uniformly; otherwise a centre crop with the ratio clamped.
struct RandomResizedCropParams {
  double scale_min = 0.08, scale_max = 1.0;
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
};
CropRect random_resized_crop_rect(ImageSize in, Rng& rng, RandomResizedCropParams p = {});
Image random_resized_crop(const Image& img, int64_t out_size, Rng& rng, RandomResizedCropParams p = {});

// torchvision ColorJitter: brightness, contrast, saturation and hue factors drawn
// uniformly (brightness in [max(0,1-b), 1+b], likewise contrast and saturation;
// hue shift in [-hue, hue] turns of the colour wheel, hue <= 0.5) and applied in a
// random order, clamping to 0..255 after each step, rounding once at the end.
// A zero parameter skips that adjustment (and its random draw). Grey is
// 0.299 R + 0.587 G + 0.114 B. The hue step rotates chroma in YIQ space, a
// close, cheaper stand-in for torchvision's HSV hue shift.
struct ColorJitterParams {
  float brightness = 0.4f, contrast = 0.4f, saturation = 0.4f, hue = 0.0f;
};
void color_jitter(Image& img, Rng& rng, ColorJitterParams p = {});

// img (H,W,3 BGR uint8) -> out (3,H,W) float =, channel 0 = B, values 0..255.
void to_chw_float(const Image& img, float* out);

int64_t round_up_to_multiple(int64_t v, int64_t multiple);
// (max H, max W) over the images, each rounded up to `multiple`.
ImageSize padded_batch_size(const std::vector<ImageSize>& sizes, int64_t multiple = 32);
// imgs[i] -> out (N,3,out_h,out_w) =, each image at the top-left, zeros elsewhere.
void pack_batch(const std::vector<const Image*>& imgs, float* out, int64_t out_h, int64_t out_w);
// pack_batch into a new CPU tensor of padded_batch_size(...) (NCHW, BGR 0..255).
rt::Tensor batch_to_tensor(const std::vector<const Image*>& imgs, int64_t multiple = 32);
// A CPU batch (N,3,h,w) zero-padded at the bottom and right to (N,3,H,W), the
// layout batch_to_tensor gives a batch whose largest image is HxW: data-parallel
// ranks pad their parts of a batch to the size of the whole batch. Returns the
// input when it already has that size; H < h or W < w is an error.
rt::Tensor pad_batch(const rt::Tensor& images, int64_t H, int64_t W);
// Data parallelism: pads this rank's part of a batch to the largest part's size
// over all ranks (one small allreduce; every rank must call it), i.e. to the size
// of the whole batch on one process. Unchanged with one rank.
rt::Tensor pad_batch_across_ranks(const rt::Tensor& images);

}  // namespace detnas::data
