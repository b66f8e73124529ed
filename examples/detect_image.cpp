// Example: load a detector checkpoint (from `detnas train` or api::save_detector),
// detect objects in a JPEG/PNG file, print them and draw them into OUT.jpg.
// Build: g++ detect_image.cpp $(pkg-config --cflags --libs detnas)
// Run:   ./detect_image runs/train/last photo.jpg boxes.jpg [ARCH for a supernet checkpoint]
#include <detnas/detnas.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>

using namespace detnas;

int main(int argc, char** argv) {
  if (argc < 3) return std::fprintf(stderr, "usage: %s CHECKPOINT IMAGE [OUT.jpg] [ARCH]\n", argv[0]), 2;
  api::use_best_blas_kernels(argv);
  // Library log lines go wherever the program wants; here: stderr with a tag.
  api::set_log_callback([](api::LogLevel, const std::string& msg) { std::fprintf(stderr, "[lib] %s\n", msg.c_str()); });
  try {
    api::DetectorOptions opt;
    if (argc > 4) opt.arch = argv[4];  // the path to run when the checkpoint is a supernet
    api::Detector detector = api::Detector::load(argv[1], opt);
    std::printf("model: space %s, arch %s, %s with %lld classes, input short side %lld (max %lld)\n",
                detector.spec().space.c_str(), api::format_arch(detector.arch()).c_str(), detector.network().kind(),
                (long long)detector.num_classes(), (long long)detector.spec().short_side,
                (long long)detector.spec().max_size);

    std::ifstream f(argv[2], std::ios::binary);
    if (!f) return std::fprintf(stderr, "detect_image: cannot open %s\n", argv[2]), 1;
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());

    auto t0 = std::chrono::steady_clock::now();
    std::vector<api::Detection> dets = detector.detect(bytes, argv[2]);  // decode + resize + forward + NMS
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%zu detections in %.1f ms\n", dets.size(), ms);
    for (size_t i = 0; i < dets.size() && i < 10; ++i) {
      const api::Detection& d = dets[i];  // best first
      std::printf("  category %lld  score %.3f  box %.1f %.1f %.1f %.1f\n", (long long)d.category_id, d.score, d.x1,
                  d.y1, d.x2, d.y2);
    }

    // Batch inference on decoded images: one forward for the whole batch.
    api::Image img = api::decode_image(bytes.data(), bytes.size(), argv[2]);
    std::vector<std::vector<api::Detection>> batch = detector.detect_batch({img, img});
    std::printf("batch of 2: %zu and %zu detections\n", batch[0].size(), batch[1].size());

    if (argc > 3) {
      api::draw_detections(img, dets, 0.05f);
      api::write_jpeg(argv[3], img);
      std::printf("drew the detections into %s\n", argv[3]);
    }
  } catch (const api::Error& e) {
    std::fprintf(stderr, "detect_image: %s\n", e.what());
    return 1;
  }
  return 0;
}
