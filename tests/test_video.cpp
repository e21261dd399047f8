// Video and frame-folder reading on the real files of data/videos (see data/videos/PROVENANCE.md).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "tinyvid/data/frames.hpp"
#include "tinyvid/data/transforms.hpp"
#include "tinyvid/data/video.hpp"
#include "tinyvid/data/video_writer.hpp"
#include "temp_files.hpp"

namespace {

namespace fs = std::filesystem;
using testing::slurp;
using testing::TempDir;
using testing::TempFile;
using tv::data::Clip;
using tv::data::Image;
using tv::data::VideoReader;

const std::string kVideos = std::string(TINYVID_TEST_DATA) + "/videos/";

// FFmpeg's warnings about the broken files would drown doctest's output.
const int kQuietFFmpeg = (av_log_set_level(AV_LOG_FATAL), 0);

uint64_t fnv1a(const Image& img) {
  uint64_t h = 1469598103934665603ull ^ static_cast<uint64_t>(img.height * 65536 + img.width);
  for (uint8_t b : img.pixels) h = (h ^ b) * 1099511628211ull;
  return h;
}

// A scratch file removed when the test ends.


// The video stream's packets as the demuxer gives them: where each lies in the file, and its size.
std::vector<std::pair<int64_t, int>> video_packets(const std::string& path) {
  AVFormatContext* fmt = nullptr;
  REQUIRE(avformat_open_input(&fmt, path.c_str(), nullptr, nullptr) >= 0);
  const int v = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  std::vector<std::pair<int64_t, int>> out;
  AVPacket* pkt = av_packet_alloc();
  while (v >= 0 && av_read_frame(fmt, pkt) >= 0) {
    if (pkt->stream_index == v) out.emplace_back(pkt->pos, pkt->size);
    av_packet_unref(pkt);
  }
  av_packet_free(&pkt);
  avformat_close_input(&fmt);
  return out;
}

// Every frame of a plain FFmpeg decode (one thread, no seeking), converted by swscale into padded rows as
// the reader did before it converted some frames in place: fnv1a of each, in the order they come out.
std::vector<uint64_t> plain_decode(const std::string& path) {
  AVFormatContext* fmt = nullptr;
  REQUIRE(avformat_open_input(&fmt, path.c_str(), nullptr, nullptr) >= 0);
  REQUIRE(avformat_find_stream_info(fmt, nullptr) >= 0);
  const AVCodec* dec = nullptr;
  const int v = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &dec, 0);
  REQUIRE(v >= 0);
  AVCodecContext* cc = avcodec_alloc_context3(dec);
  avcodec_parameters_to_context(cc, fmt->streams[v]->codecpar);
  cc->thread_count = 1;
  REQUIRE(avcodec_open2(cc, dec, nullptr) >= 0);
  AVPacket* pkt = av_packet_alloc();
  AVFrame* f = av_frame_alloc();
  SwsContext* sws = nullptr;
  std::vector<uint8_t> buf;
  std::vector<uint64_t> out;
  auto drain = [&] {
    while (avcodec_receive_frame(cc, f) == 0) {
      sws = sws_getCachedContext(sws, f->width, f->height, static_cast<AVPixelFormat>(f->format), f->width, f->height,
                                 AV_PIX_FMT_RGB24, SWS_BILINEAR, nullptr, nullptr, nullptr);
      const int stride = FFALIGN(f->width * 3, 64);
      buf.assign(static_cast<size_t>(stride) * f->height + 64, 0);
      uint8_t* dst[4] = {buf.data(), nullptr, nullptr, nullptr};
      int dst_stride[4] = {stride, 0, 0, 0};
      sws_scale(sws, f->data, f->linesize, 0, f->height, dst, dst_stride);
      Image img(f->height, f->width, 3);
      for (int y = 0; y < f->height; ++y) std::memcpy(img.row(y), buf.data() + static_cast<size_t>(y) * stride, f->width * 3u);
      out.push_back(fnv1a(img));
    }
  };
  while (av_read_frame(fmt, pkt) >= 0) {
    if (pkt->stream_index == v) avcodec_send_packet(cc, pkt);
    av_packet_unref(pkt);
    drain();
  }
  avcodec_send_packet(cc, nullptr);
  drain();
  sws_freeContext(sws);
  av_frame_free(&f);
  av_packet_free(&pkt);
  avcodec_free_context(&cc);
  avformat_close_input(&fmt);
  return out;
}

std::vector<uint64_t> hashes(const Clip& clip) {
  std::vector<uint64_t> out;
  for (const Image& img : clip) out.push_back(fnv1a(img));
  return out;
}

std::vector<int64_t> first_n(int64_t n) {
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = i;
  return out;
}

struct GoodVideo {
  const char* file;
  int64_t frames, width, height;  // width, height of the upright frames
  double fps;
};

// PROVENANCE.md's "decoded" frame counts, sizes and average frame rates.
const GoodVideo kGood[] = {
    {"demo.mp4", 280, 340, 256, 28},
    {"test.mp4", 300, 340, 256, 30},
    {"part_0.mp4", 32, 340, 256, 30},
    {"demo_spatiotemporal_det.mp4", 57, 340, 256, 6},
    {"test_video_structuralize.mp4", 300, 426, 240, 30000.0 / 1001},
    {"demo_skeleton.mp4", 72, 1920, 1080, 2160.0 / 77},
    {"test.avi", 164, 320, 240, 25},
    {"S001C001P001R001A001_rgb.avi", 103, 1920, 1080, 30},
    {"flipping_a_pancake.mkv", 310, 426, 240, 30},
    {"bbb_480p_vp9_opus_1second.webm", 24, 854, 480, 24},
    {"test_stereo_left_right.webm", 26, 256, 144, 12.5},
    {"unordered.mov", 4, 50, 50, 32},
    {"video_0.mov", 3, 568, 320, 30},
    {"video_90.mov", 3, 320, 568, 30},
    {"video_180.mov", 3, 568, 320, 30},
    {"video_270.mov", 3, 320, 568, 30},
};

}  // namespace

TEST_CASE("VideoReader: every good video: count, size, fps, and seeking gives the sequential frames") {
  for (const GoodVideo& g : kGood) {
    SUBCASE(g.file) {
      VideoReader r(kVideos + g.file);
      CHECK(r.frame_count() == g.frames);
      CHECK(r.width() == g.width);
      CHECK(r.height() == g.height);
      CHECK(r.fps() == doctest::Approx(g.fps).epsilon(1e-3));
      CHECK(r.duration() > 0);
      // Frame by frame in order: the reader decodes forward without seeking.
      std::vector<uint64_t> seq;
      for (int64_t i = 0; i < g.frames; ++i) {
        Image img = r.frame(i);
        REQUIRE(img.height == g.height);
        REQUIRE(img.width == g.width);
        REQUIRE(img.channels == 3);
        seq.push_back(fnv1a(img));
      }
      // Scattered, unsorted, repeated indices, on a fresh reader and on the used one.
      const int64_t n = g.frames;
      std::vector<int64_t> idx = {n - 1, 0, n / 2, n / 2, n / 3, n - 2 < 0 ? 0 : n - 2, 1 % n, (2 * n) / 3, 0, n - 1};
      for (int pass = 0; pass < 2; ++pass) {
        VideoReader fresh(kVideos + g.file);
        Clip clip = pass == 0 ? fresh.read(idx) : r.read(idx);
        REQUIRE(clip.size() == idx.size());
        for (size_t k = 0; k < idx.size(); ++k) CHECK_MESSAGE(fnv1a(clip[k]) == seq[static_cast<size_t>(idx[k])], "frame ", idx[k]);
      }
      // A dense range in one call equals the frames one at a time.
      if (g.width * g.height <= 854 * 480) {
        std::vector<int64_t> all(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) all[static_cast<size_t>(i)] = i;
        Clip clip = VideoReader(kVideos + g.file).read(all);
        for (int64_t i = 0; i < n; ++i) CHECK(fnv1a(clip[static_cast<size_t>(i)]) == seq[static_cast<size_t>(i)]);
      }
      CHECK_THROWS_WITH_AS(r.frame(n), doctest::Contains("out of range"), tv::Error);
      CHECK_THROWS_WITH_AS(r.read({0, -1}), doctest::Contains("frame index -1 out of range"), tv::Error);
    }
  }
}

TEST_CASE("VideoReader: metadata and rotation") {
  VideoReader demo(kVideos + "demo.mp4");
  CHECK(demo.codec() == "h264");
  CHECK(demo.container().find("mp4") != std::string::npos);
  CHECK(demo.duration() == doctest::Approx(10.0).epsilon(1e-3));
  CHECK(VideoReader(kVideos + "bbb_480p_vp9_opus_1second.webm").codec() == "vp9");
  CHECK(VideoReader(kVideos + "flipping_a_pancake.mkv").container().find("matroska") != std::string::npos);

  // The rotated files show other scenes than video_0.mov (checked by eye: their key labels read upright),
  // so the test pins the angle, the upright size and the direction of each turn.
  const struct { const char* file; int rotation; int64_t h, w; } cases[] = {
      {"video_0.mov", 0, 320, 568}, {"video_90.mov", 90, 568, 320}, {"video_180.mov", 180, 320, 568}, {"video_270.mov", 270, 568, 320}};
  for (const auto& c : cases) {
    SUBCASE(c.file) {
      VideoReader r(kVideos + c.file);
      CHECK(r.rotation() == c.rotation);
      Image img = r.frame(2);
      CHECK(img.height == c.h);
      CHECK(img.width == c.w);
    }
  }
  SUBCASE("turns are clockwise") {
    Image img(2, 3, 1);  // 0 1 2 / 3 4 5
    for (int i = 0; i < 6; ++i) img.pixels[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
    using tv::data::detail::rotate_clockwise;
    CHECK(rotate_clockwise(img, 90).pixels == std::vector<uint8_t>{3, 0, 4, 1, 5, 2});
    CHECK(rotate_clockwise(img, 180).pixels == std::vector<uint8_t>{5, 4, 3, 2, 1, 0});
    CHECK(rotate_clockwise(img, 270).pixels == std::vector<uint8_t>{2, 5, 1, 4, 0, 3});
    CHECK(rotate_clockwise(img, 90).height == 3);
  }
}

TEST_CASE("VideoReader: bad inputs are tv::Errors naming the file and the reason") {
  CHECK_THROWS_WITH_AS(VideoReader(kVideos + "no_such_file.mp4"), doctest::Contains("no_such_file.mp4' does not exist"), tv::Error);
  CHECK_THROWS_WITH_AS(VideoReader(kVideos + "test.wav"), doctest::Contains("no video stream in"), tv::Error);
  // Its header claims 12336 x 12336 (and no frame decodes): refused by the size before any decoding.
  CHECK_THROWS_WITH_AS(VideoReader(kVideos + "invalid_vp9_bitstream-bug_1416.webm"),
                       doctest::Contains("invalid_vp9_bitstream-bug_1416.webm' claims 12336 x 12336 pixels"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(VideoReader(kVideos + "fixed_lacing_bad_lace_size.mkv"),
                       doctest::Contains("no video packets could be read from"), tv::Error);
  CHECK_THROWS_WITH_AS(VideoReader{kVideos}, doctest::Contains("not a regular file"), tv::Error);

  SUBCASE("the header over-counts: 50 claimed, 49 decodable") {
    VideoReader r(kVideos + "corrupted.mp4");
    CHECK(r.frame_count() == 49);
    CHECK(r.read({48, 0, 30}).size() == 3);
    CHECK_THROWS_WITH_AS(r.frame(49), doctest::Contains("corrupted.mp4' with 49 frames"), tv::Error);
  }
  SUBCASE("one frame of a claimed 9 s, beside a subtitle stream") {
    VideoReader r(kVideos + "block_ends_beyond_cluster.mkv");
    CHECK(r.frame_count() == 1);
    CHECK(r.frame(0).width == 576);
  }
  SUBCASE("made here: zero bytes, garbage") {
    TempFile empty("empty.mp4", "");
    CHECK_THROWS_WITH_AS(VideoReader(empty.path.string()), doctest::Contains("is empty (0 bytes)"), tv::Error);
    std::mt19937 rng(7);
    std::string junk(100000, '\0');
    for (char& c : junk) c = static_cast<char>(rng() & 0xff);
    TempFile garbage("garbage.mp4", junk);
    CHECK_THROWS_WITH_AS(VideoReader(garbage.path.string()), doctest::Contains("garbage.mp4"), tv::Error);
  }
  SUBCASE("made here: truncated copies of demo.mp4 fail cleanly or read what is there") {
    const std::string bytes = slurp(kVideos + "demo.mp4");
    for (size_t len : {size_t(16), size_t(1000), size_t(40000), size_t(200000), size_t(400000), bytes.size() - 1000}) {
      TempFile cut("cut_" + std::to_string(len) + ".mp4", bytes.substr(0, len));
      try {
        VideoReader r(cut.path.string());
        const int64_t n = r.frame_count();
        CHECK(n >= 1);
        CHECK(n <= 280);
        CHECK(r.read({n - 1, 0, n / 2}).size() == 3);
      } catch (const tv::Error& e) {
        CHECK(std::string(e.what()).find(cut.path.filename().string()) != std::string::npos);
      }
    }
  }
}

TEST_CASE("VideoReader: frames equal a plain FFmpeg decode (rows converted in place or through padding)") {
  // 1920 wide: converted in place; 340 and 854 (VP9): through the padded buffer. Frame 0 comes from open.
  for (const char* file : {"demo_skeleton.mp4", "test.mp4", "bbb_480p_vp9_opus_1second.webm"}) {
    SUBCASE(file) {
      const std::vector<uint64_t> want = plain_decode(kVideos + file);
      VideoReader r(kVideos + file);
      REQUIRE(r.frame_count() == static_cast<int64_t>(want.size()));
      const int64_t n = std::min<int64_t>(r.frame_count(), 24);
      CHECK(hashes(r.read(first_n(n))) == std::vector<uint64_t>(want.begin(), want.begin() + n));
      CHECK(fnv1a(r.frame(r.frame_count() - 1)) == want.back());
    }
  }
}

TEST_CASE("VideoReader: the frame count of a damaged copy is what decodes") {
  // test.mp4 has key frames at 0 and 235; packet 100 lies in the first GOP, which decoding the last GOP
  // to count would not see.
  const std::string bytes = slurp(kVideos + "test.mp4");
  const auto pkts = video_packets(kVideos + "test.mp4");
  REQUIRE(pkts.size() == 300);
  const auto [pos, size] = pkts[100];
  REQUIRE(pos > 0);
  SUBCASE("a NAL unit length past the packet's end: seen at open") {
    std::string b = bytes;
    const uint32_t len = static_cast<uint32_t>(size) + 100;
    for (int k = 0; k < 4; ++k) b[static_cast<size_t>(pos + k)] = static_cast<char>(len >> (24 - 8 * k));
    TempFile bad("bad_nal_length.mp4", b);
    const std::vector<uint64_t> want = plain_decode(bad.path.string());
    REQUIRE(want.size() == 299);
    VideoReader r(bad.path.string(), 1);
    CHECK(r.frame_count() == 299);
    CHECK(hashes(r.read(first_n(299))) == want);
    CHECK_THROWS_WITH_AS(r.frame(299), doctest::Contains("with 299 frames"), tv::Error);
  }
  SUBCASE("slice data zeroed, NAL unit framing intact: found when decoding reaches it") {
    std::string b = bytes;
    std::memset(b.data() + pos + 5, 0, static_cast<size_t>(size - 5));  // keep the length and the NAL header
    TempFile bad("zeroed_slice.mp4", b);
    const std::vector<uint64_t> want = plain_decode(bad.path.string());
    REQUIRE(want.size() == 299);
    VideoReader r(bad.path.string(), 1);
    const int64_t n = r.frame_count();  // one per packet (300) until decoding shows otherwise
    CHECK(n >= 299);
    if (n > 299) CHECK_THROWS_WITH_AS(r.read(first_n(n)), doctest::Contains("with 299 decodable frames"), tv::Error);
    CHECK(r.frame_count() == 299);
    CHECK(hashes(r.read(first_n(299))) == want);
    CHECK(hashes(VideoReader(bad.path.string(), 1).read({298, 150, 99})) == std::vector<uint64_t>{want[298], want[150], want[99]});
    // count_decoded (probe, check-videos) decodes all of it first: the true count at once, reads agree.
    VideoReader fresh(bad.path.string(), 1);
    CHECK(fresh.count_decoded() == 299);
    CHECK(fresh.frame_count() == 299);
    CHECK(hashes(fresh.read({0, 298})) == std::vector<uint64_t>{want[0], want[298]});
  }
  SUBCASE("the intact file: count_decoded agrees with the packet count") {
    VideoReader r(kVideos + "test.mp4", 1);
    CHECK(r.count_decoded() == 300);
    CHECK(r.frame_count() == 300);
    CHECK(hashes(r.read({299, 0})) == hashes(VideoReader(kVideos + "test.mp4", 1).read({299, 0})));
  }
}

namespace {

// A JPEG whose frame header (SOF0) claims width x height; the entropy-coded data stays that of the original.
std::string jpeg_claiming(const std::string& jpeg, int width, int height) {
  std::string out = jpeg;
  const size_t sof = out.find("\xFF\xC0");
  REQUIRE(sof != std::string::npos);
  out[sof + 5] = static_cast<char>(height >> 8), out[sof + 6] = static_cast<char>(height & 0xFF);
  out[sof + 7] = static_cast<char>(width >> 8), out[sof + 8] = static_cast<char>(width & 0xFF);
  return out;
}

// An AVI of `frames` motion-JPEG frames, each the bytes of `jpeg`, whose stream header states width x height.
void write_mjpeg_avi(const std::string& path, const std::string& jpeg, int width, int height, int frames) {
  AVFormatContext* oc = nullptr;
  REQUIRE(avformat_alloc_output_context2(&oc, nullptr, "avi", path.c_str()) >= 0);
  AVStream* st = avformat_new_stream(oc, nullptr);
  st->codecpar->codec_type = AVMEDIA_TYPE_VIDEO;
  st->codecpar->codec_id = AV_CODEC_ID_MJPEG;
  st->codecpar->width = width;
  st->codecpar->height = height;
  st->time_base = AVRational{1, 25};
  REQUIRE(avio_open(&oc->pb, path.c_str(), AVIO_FLAG_WRITE) >= 0);
  REQUIRE(avformat_write_header(oc, nullptr) >= 0);
  AVPacket* pkt = av_packet_alloc();
  for (int i = 0; i < frames; ++i) {
    REQUIRE(av_new_packet(pkt, static_cast<int>(jpeg.size())) >= 0);
    std::memcpy(pkt->data, jpeg.data(), jpeg.size());
    pkt->pts = pkt->dts = i;
    pkt->flags |= AV_PKT_FLAG_KEY;
    pkt->stream_index = 0;
    av_packet_rescale_ts(pkt, AVRational{1, 25}, st->time_base);
    REQUIRE(av_interleaved_write_frame(oc, pkt) >= 0);
  }
  av_packet_free(&pkt);
  REQUIRE(av_write_trailer(oc) >= 0);
  avio_closep(&oc->pb);
  avformat_free_context(oc);
}

}  // namespace

TEST_CASE("VideoReader: playlists and file lists are refused: only the named file is read, as a container") {
  // A dataset entry that is an HLS playlist or a concat list would make train / probe / extract-frames read the
  // media files it names from elsewhere on disk.
  TempDir dir("video_indirection");
  fs::create_symlink(kVideos + "demo.mp4", dir.path / "clip.mp4");
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir.path / name, std::ios::binary) << text;
    return (dir.path / name).string();
  };
  const std::string hls = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
                          "#EXTINF:10.0,\nclip.mp4\n#EXT-X-ENDLIST\n";
  const std::string concat = "ffconcat version 1.0\nfile clip.mp4\nfile clip.mp4\n";
  for (const auto& c : {std::tuple<std::string, std::string, std::string>{"playlist.m3u8", hls, "hls"},
                        {"concat.ffconcat", concat, "concat"},
                        {"disguised.mp4", concat, "concat"}}) {
    const std::string &name = std::get<0>(c), &text = std::get<1>(c), &format = std::get<2>(c);
    CAPTURE(name);
    const std::string path = write(name, text);
    CHECK_THROWS_WITH_AS(VideoReader{path},
                         doctest::Contains(("VideoReader: '" + path + "' is a '" + format +
                                            "' file, not a video container; expected one of mov,mp4")
                                               .c_str()),
                         tv::Error);
  }
  // The linked file itself is a video, and a path with a colon is a file name, never a protocol.
  CHECK(VideoReader((dir.path / "clip.mp4").string()).frame_count() == 280);
  fs::create_symlink(kVideos + "unordered.mov", dir.path / "concat:clip.mov");
  CHECK(VideoReader((dir.path / "concat:clip.mov").string()).frame_count() == 4);
}

TEST_CASE("VideoReader, VideoWriter: a relative name with a colon is a local file, not an FFmpeg protocol") {
  // "pipe:1" would be standard output (and "pipe:0" standard input) to FFmpeg.
  TempDir dir("video_colon_names");
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path);
  try {
    tv::data::VideoWriter w("pipe:1", 32, 32, 10);
    for (int i = 0; i < 3; ++i) w.write(Image(32, 32, 3));
    w.close();
    CHECK(fs::is_regular_file(dir.path / "pipe:1"));
    CHECK(VideoReader("pipe:1").frame_count() == 3);
  } catch (...) {
    fs::current_path(cwd);
    throw;
  }
  fs::current_path(cwd);
}

TEST_CASE("VideoReader: frames larger than 8192 x 8192 are refused before they are decoded") {
  // A few KB of motion JPEG can claim 16000 x 16000 pixels: 768 MB per RGB frame, more in the decoder.
  TempDir dir("video_pixel_cap");
  const std::string jpeg = slurp(kVideos + "rawframes/img_sample/img_00001.jpg");
  const std::string huge = jpeg_claiming(jpeg, 16000, 16000);
  SUBCASE("the stream states the size: refused at open, naming file and size") {
    const std::string path = (dir.path / "huge.avi").string();
    write_mjpeg_avi(path, huge, 16000, 16000, 2);
    CHECK_THROWS_WITH_AS(VideoReader{path},
                         doctest::Contains(("VideoReader: '" + path +
                                            "' claims 16000 x 16000 pixels; expected at most 67108864 (8192 x 8192)")
                                               .c_str()),
                         tv::Error);
  }
  SUBCASE("the stream understates it: the decoder refuses every frame") {
    const std::string path = (dir.path / "understated.avi").string();
    write_mjpeg_avi(path, huge, 320, 240, 2);
    CHECK_THROWS_WITH_AS(VideoReader{path}, doctest::Contains(("no decodable video frame in '" + path + "'").c_str()),
                         tv::Error);
  }
  SUBCASE("the same file at its real size reads") {
    const std::string path = (dir.path / "small.avi").string();
    write_mjpeg_avi(path, jpeg, 320, 240, 2);
    VideoReader r(path);
    CHECK(r.frame_count() == 2);
    CHECK(r.width() == 320);
    CHECK(r.frame(1).height == 240);
  }
  // 8K video (7680 x 4320, DCI 8192 x 4320) is within the cap.
  CHECK_NOTHROW(tv::data::check_frame_size(7680, 4320, "test", "8k.mp4"));
  CHECK_NOTHROW(tv::data::check_frame_size(8192, 8192, "test", "square.mp4"));
  CHECK_THROWS_AS(tv::data::check_frame_size(8192, 8193, "test", "over.mp4"), tv::Error);
}

namespace {
uint32_t crc32_of(const std::string& bytes) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : bytes) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}
std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
// A PNG chunk: length, type, data, CRC of type and data.
std::string png_chunk(const std::string& type, const std::string& data) {
  return be32(static_cast<uint32_t>(data.size())) + type + data + be32(crc32_of(type + data));
}
}  // namespace

TEST_CASE("read_image: a JPEG or PNG header claiming more than 8192 x 8192 pixels is refused before decoding") {
  TempDir dir("image_pixel_cap");
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir.path / name, std::ios::binary) << bytes;
    return (dir.path / name).string();
  };
  const std::string jpeg = slurp(kVideos + "rawframes/img_sample/img_00001.jpg");
  const std::string big_jpeg = write("big.jpg", jpeg_claiming(jpeg, 30000, 20000));
  CHECK_THROWS_WITH_AS(tv::data::read_image(big_jpeg),
                       doctest::Contains(("read_image: '" + big_jpeg + "' claims 30000 x 20000 pixels").c_str()),
                       tv::Error);
  // 20000 x 20000 RGB, 8 bits, and one tiny IDAT: 57 bytes that would decode to 1.2 GB.
  const std::string ihdr = be32(20000) + be32(20000) + std::string("\x08\x02\x00\x00\x00", 5);
  const std::string png = std::string("\x89PNG\r\n\x1A\n", 8) + png_chunk("IHDR", ihdr) +
                          png_chunk("IDAT", std::string("\x78\x9C\x03\x00\x00\x00\x00\x01", 8)) + png_chunk("IEND", "");
  const std::string big_png = write("big.png", png);
  CHECK_THROWS_WITH_AS(tv::data::read_image(big_png),
                       doctest::Contains(("read_image: '" + big_png + "' claims 20000 x 20000 pixels").c_str()),
                       tv::Error);
}

TEST_CASE("FrameFolderReader: MMAction2 rawframes") {
  using tv::data::format_frame_name;
  using tv::data::FrameFolderReader;
  const std::string dir = kVideos + "rawframes/";

  CHECK(format_frame_name("img_{:05d}.jpg", 7) == "img_00007.jpg");
  CHECK(format_frame_name("img_{:05}.jpg", 12) == "img_00012.jpg");
  CHECK(format_frame_name("{}.png", 123) == "123.png");
  CHECK(format_frame_name("f{:d}", 5) == "f5");
  CHECK(format_frame_name("img_{:03d}.jpg", 12345) == "img_12345.jpg");
  CHECK_THROWS_WITH_AS(format_frame_name("img_{:5s}.jpg", 1), doctest::Contains("expected '{}' or '{:0Nd}'"), tv::Error);
  CHECK_THROWS_WITH_AS(format_frame_name("img.jpg", 1), doctest::Contains("expected one '{}'"), tv::Error);
  // A width past 64 bits or past any file name's length: a tv::Error saying what was expected, not std::stoul's.
  CHECK_THROWS_WITH_AS(format_frame_name("img_{:099999999999999999999d}.jpg", 1),
                       doctest::Contains("frame template 'img_{:099999999999999999999d}.jpg': expected a whole number "
                                         "in [0, 255] for 'the zero-padded width', got '99999999999999999999'"),
                       tv::Error);
  CHECK_THROWS_WITH_AS(format_frame_name("{:0300d}", 1), doctest::Contains("got '300'"), tv::Error);
  CHECK(format_frame_name("{:0255d}", 1).size() == 255);

  FrameFolderReader imgs(dir + "img_sample");
  Clip clip = imgs.read({9, 0, 4, 4});
  REQUIRE(clip.size() == 4);
  for (const Image& img : clip) {
    CHECK(img.height == 240);
    CHECK(img.width == 320);
    CHECK(img.channels == 3);
  }
  CHECK(clip[2].pixels == clip[3].pixels);
  CHECK(clip[0].pixels != clip[1].pixels);
  CHECK(clip[1].pixels == tv::data::read_image(dir + "img_sample/img_00001.jpg").pixels);
  CHECK(FrameFolderReader(dir + "img_sample", "img_{:05d}.jpg", 0).read({1})[0].pixels == clip[1].pixels);
  CHECK_THROWS_WITH_AS(imgs.read({10}), doctest::Contains("img_00011.jpg' does not exist"), tv::Error);
  CHECK_THROWS_WITH_AS(FrameFolderReader(dir + "nope"), doctest::Contains("nope' does not exist"), tv::Error);

  // Flow frames are grayscale JPEGs: three equal channels.
  Image x = FrameFolderReader(dir + "flow_sample", "x_{:05d}.jpg").read({2})[0];
  CHECK(x.channels == 3);
  CHECK(x.width == 320);
  bool equal = true;
  for (size_t i = 0; i < x.pixels.size(); i += 3) equal = equal && x.pixels[i] == x.pixels[i + 1] && x.pixels[i] == x.pixels[i + 2];
  CHECK(equal);
}

TEST_CASE("read_image: broken JPEGs are errors naming the file, and the fuzzer's finds decode safely") {
  const fs::path dir = fs::temp_directory_path() / ("tinyvid_test_jpeg_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string jpg = kVideos + "rawframes/img_sample/img_00001.jpg";
  const std::string bytes = slurp(jpg);
  auto write = [&](const std::string& name, const std::string& content) {
    std::ofstream(dir / name, std::ios::binary) << content;
    return (dir / name).string();
  };
  CHECK_THROWS_WITH_AS(tv::data::read_image(write("header_only.jpg", bytes.substr(0, 2))),
                       doctest::Contains("header_only.jpg' as JPEG"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::data::read_image(write("garbage.jpg", "\xFF\xD8" + std::string(500, 'x'))),
                       doctest::Contains("garbage.jpg' as JPEG"), tv::Error);
  // PNG: a file cut short, a bad CRC in the header, and a format read_image does not read.
  const std::string png = slurp(std::string(TINYVID_TEST_DATA) + "/../fixtures/opencv/png_rgb16.png");
  CHECK_THROWS_WITH_AS(tv::data::read_image(write("cut.png", png.substr(0, png.size() - 30))),
                       doctest::Contains("cut.png' as PNG"), tv::Error);
  std::string bad_crc = png;
  bad_crc[29] ^= 1;  // the IHDR chunk's CRC
  CHECK_THROWS_WITH_AS(tv::data::read_image(write("crc.png", bad_crc)), doctest::Contains("crc.png' as PNG"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::data::read_image(write("frame.ppm", "P6\n4 3\n255\n" + std::string(36, 'x'))),
                       doctest::Contains("neither JPEG nor PNG"), tv::Error);
  // A file cut in its entropy-coded data decodes (the rest gray), as OpenCV's imread returns it.
  const auto cut = tv::data::read_image(write("cut.jpg", bytes.substr(0, bytes.size() / 2)));
  CHECK(cut.width == 320);
  for (const auto& e : fs::directory_iterator(std::string(TINYVID_TEST_DATA) + "/../fuzz/regressions/image")) {
    CAPTURE(e.path().string());
    try {
      tv::data::read_image(e.path().string());
    } catch (const tv::Error&) {
    }
  }
  fs::remove_all(dir);
}

TEST_CASE("read_image and Resize give OpenCV's pixels (cv2.imread, cv2.resize INTER_LINEAR)") {
  // tests/fixtures/opencv: made by tools/fixtures/make_opencv_fixtures.py with Debian's OpenCV 4.6.
  const std::string fix = std::string(TINYVID_TEST_DATA) + "/../fixtures/opencv/";
  const Image img = tv::data::read_image(kVideos + "rawframes/img_sample/img_00001.jpg");
  CHECK(img.pixels == tv::data::read_image(fix + "img_00001_decoded.png").pixels);
  auto max_diff = [](const Image& a, const Image& b) {
    REQUIRE(a.pixels.size() == b.pixels.size());
    int d = 0;
    for (size_t i = 0; i < a.pixels.size(); ++i) d = std::max(d, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
    return d;
  };
  const Image small = tv::data::resize_bilinear(img, 113, 85);
  CHECK(max_diff(tv::data::resize_bilinear(img, 171, 128), tv::data::read_image(fix + "img_00001_resized_171x128.png")) == 0);
  CHECK(max_diff(small, tv::data::read_image(fix + "img_00001_resized_113x85.png")) == 0);
  CHECK(max_diff(tv::data::resize_bilinear(small, 150, 113),
                 tv::data::read_image(fix + "img_00001_resized_113x85_then_150x113.png")) == 0);
}

TEST_CASE("read_image decodes every kind of PNG as cv2.imread (palette + tRNS, 1/4/16-bit gray, alpha, interlaced)") {
  const std::string fix = std::string(TINYVID_TEST_DATA) + "/../fixtures/opencv/";
  for (const char* kind : {"palette_trns", "gray1", "gray4", "gray16", "gray_alpha", "rgba", "rgb16", "rgb_interlaced"}) {
    CAPTURE(kind);
    const Image img = tv::data::read_image(fix + "png_" + kind + ".png");
    const Image expected = tv::data::read_image(fix + "png_" + kind + "_cv2.png");
    CHECK(img.width == 13);
    CHECK(img.height == 9);
    CHECK(img.channels == 3);
    CHECK(img.pixels == expected.pixels);
  }
}

TEST_CASE("write_jpeg writes the bytes of cv2.imencode (libjpeg defaults, 4:2:0)") {
  const std::string fix = std::string(TINYVID_TEST_DATA) + "/../fixtures/opencv/";
  TempFile out("frame.jpg", "");
  const Image img = tv::data::read_image(fix + "img_00001_decoded.png");
  for (int quality : {95, 75}) {
    CAPTURE(quality);
    tv::data::write_jpeg(out.path.string(), img, quality);
    CHECK(slurp(out.path.string()) == slurp(fix + "img_00001_q" + std::to_string(quality) + ".jpg"));
  }
  Image gray = tv::data::read_image(fix + "gray_83x61.png");  // three equal channels; write it as one
  Image one(gray.height, gray.width, 1);
  for (size_t i = 0; i < one.pixels.size(); ++i) one.pixels[i] = gray.pixels[3 * i];
  tv::data::write_jpeg(out.path.string(), one, 95);
  CHECK(slurp(out.path.string()) == slurp(fix + "gray_83x61_q95.jpg"));
  CHECK_THROWS_WITH_AS(tv::data::write_jpeg("/nonexistent-dir/x.jpg", img), doctest::Contains("cannot create"), tv::Error);
}

TEST_CASE("write_png round-trips through read_image") {
  Image img = VideoReader(kVideos + "unordered.mov").frame(2);
  TempFile png("frame.png", "");
  tv::data::write_png(png.path.string(), img);
  Image back = tv::data::read_image(png.path.string());
  CHECK(back.width == img.width);
  CHECK(back.height == img.height);
  CHECK(back.pixels == img.pixels);
  CHECK_THROWS_WITH_AS(tv::data::write_png(png.path.string(), Image()), doctest::Contains("non-empty image"), tv::Error);
  CHECK_THROWS_WITH_AS(tv::data::write_png("/nonexistent-dir/x.png", img), doctest::Contains("cannot create"), tv::Error);
}
