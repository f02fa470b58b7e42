// Canny edge detection as OpenCV's cv::Canny computes it (3x3 Sobel with replicated borders, L1
// gradient magnitude, the channel of largest magnitude per pixel for colour images, non-maximum
// suppression in four directions with OpenCV's fixed-point tangent tests, hysteresis over
// 8-connected pixels): the edge maps that Canny ControlNets were trained on, made from a photo
// without Python.
#pragma once

#include "io/png_image.h"

namespace diffuse {

/// `cv2.Canny(rgb, low, high)` (apertureSize 3, L2gradient false) on the RGB image, byte for byte,
/// repeated to three channels (255 = edge). Thresholds are floored; swapped when low > high.
/// ConfigError for negative or non-finite thresholds.
Rgb8Image canny_edges(const Rgb8Image& image, double low, double high);

}  // namespace diffuse
