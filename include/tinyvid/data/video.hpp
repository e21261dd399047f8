#pragma once
// Video reading on FFmpeg (libavformat, libavcodec, libswscale; written against 5.1): frames as RGB
// tv::data::Image at native size, upright (display-matrix rotation applied), frame i = the i-th decodable
// frame in presentation order. Link tinyvid::video.
//
// A video file is untrusted input: only the named local file is read, only as one of the containers of
// kVideoContainers (a playlist or a list of other files is refused), and frames above kMaxFramePixels are
// refused before anything is decoded at that size.
//
// How frames are found, and why:
// - At open the demuxer is scanned once (no decoding, as decord does): the presentation timestamps of the
//   video packets and which of them are key frames. When every packet carries a distinct pts, frame i has
//   the i-th smallest pts, and a read can seek to the preceding key frame and decode forward ("seekable").
// - Files whose timestamps cannot be trusted (AVI keeps no pts; a damaged packet decodes to nothing, so the
//   pts table and the decoded frames disagree) are read sequentially from the start and frames are counted
//   as they come out. Any disagreement found while decoding switches the file to that mode for good.
// - The frame count is never taken from the header alone: corrupted.mp4 claims 50 and decodes 49. A seekable
//   H.264/HEVC file whose packets all pass a cheap check at the scan (not empty, not flagged corrupt, NAL unit
//   lengths that tile the packet exactly, a picture NAL in each) counts one frame per packet, without
//   decoding: that is what decodes unless a packet's payload is damaged. If a packet fails the check
//   (corrupted.mp4), the file is counted by decoding all of it; other codecs by decoding from the last key
//   frame to the end (seekable) or all of it (sequential). The count is cached. Decoding in seekable mode
//   checks that frames come out as consecutive indices, so damage the check missed turns the file sequential
//   when a read decodes through it, and the count is found again by decoding (it can only go down).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avstring.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
}

#include "tinyvid/core/error.hpp"
#include "tinyvid/data/image.hpp"

namespace tv::data {

namespace detail {

struct FormatCloser {
  void operator()(AVFormatContext* p) const { avformat_close_input(&p); }
};
struct CodecFreer {
  void operator()(AVCodecContext* p) const { avcodec_free_context(&p); }
};
struct FrameFreer {
  void operator()(AVFrame* p) const { av_frame_free(&p); }
};
struct PacketFreer {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsFreer {
  void operator()(SwsContext* p) const { sws_freeContext(p); }
};

inline std::string av_error_string(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof(buf));
  return buf;
}

// FFmpeg opens a name as a URL: "pipe:1", "concat:a|b" or "http://..." would read or write something else than
// the file of that name. "file:" makes any path (one with a colon too) the local file itself.
inline std::string local_file_url(const std::string& path) { return "file:" + path; }

// Options that keep FFmpeg on local files: no other protocol, for the file and anything a demuxer or muxer
// would open from it. Freed by the caller (av_dict_free).
inline AVDictionary* local_file_options() {
  AVDictionary* options = nullptr;
  av_dict_set(&options, "protocol_whitelist", "file", 0);
  return options;
}

// The demuxers VideoReader opens: containers that hold their streams themselves. Not the formats that read other
// files a file names (hls playlists, concat lists, dash manifests, image2 sequences): a dataset entry that is
// one would make tinyvid read media from elsewhere on disk. Audio-only containers (wav) are listed so that
// they are reported as having no video stream. Names as FFmpeg's demuxers call themselves.
constexpr const char* kVideoContainers = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,ogg,asf,wav";

// The demuxer FFmpeg would pick for a local file, for messages; "" if it recognises none.
inline std::string probe_container(const std::string& path) {
  AVIOContext* pb = nullptr;
  if (avio_open(&pb, local_file_url(path).c_str(), AVIO_FLAG_READ) < 0) return "";
  const AVInputFormat* format = nullptr;
  const int r = av_probe_input_buffer2(pb, &format, path.c_str(), nullptr, 0, 0);
  avio_closep(&pb);
  return r >= 0 && format ? format->name : "";
}

// A zeroed h x w RGB image. Large frames are asked for transparent huge pages before they are first touched
// (as numpy does for its arrays): faulting in 4 KiB pages costs a 1080p read about a sixth of its time.
inline Image new_rgb_image(int64_t h, int64_t w) {
  Image img;
  img.height = h;
  img.width = w;
  img.channels = 3;
  const size_t n = static_cast<size_t>(h * w * 3);
  img.pixels.reserve(n);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t at = reinterpret_cast<uintptr_t>(img.pixels.data());
  const uintptr_t lo = (at + kHuge - 1) & ~(kHuge - 1), hi = (at + n) & ~(kHuge - 1);
  if (at != 0 && hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);  // advice: errors are harmless
#endif
  img.pixels.resize(n);
  return img;
}

// Turns an image by a multiple of 90 degrees clockwise.
inline Image rotate_clockwise(const Image& in, int degrees) {
  if (degrees == 0) return in;
  const int64_t H = in.height, W = in.width, C = in.channels;
  const bool swap = degrees == 90 || degrees == 270;
  Image out(swap ? W : H, swap ? H : W, C);
  for (int64_t y = 0; y < out.height; ++y) {
    uint8_t* dst = out.row(y);
    for (int64_t x = 0; x < out.width; ++x) {
      int64_t sy, sx;
      if (degrees == 90) { sy = H - 1 - x; sx = y; }
      else if (degrees == 180) { sy = H - 1 - y; sx = W - 1 - x; }
      else { sy = x; sx = W - 1 - y; }
      std::memcpy(dst + x * C, in.row(sy) + sx * C, static_cast<size_t>(C));
    }
  }
  return out;
}

}  // namespace detail

class VideoReader {
 public:
  // decode_threads: the codec's thread count (frame and slice threads); 1 decodes on the calling thread.
  explicit VideoReader(const std::string& path, int decode_threads = 2) : path_(path), threads_(decode_threads) {
    TV_CHECK(decode_threads >= 1, "VideoReader: decode_threads must be >= 1, got ", decode_threads, " for '", path, "'");
    std::error_code ec;
    TV_CHECK(std::filesystem::is_regular_file(path, ec), "VideoReader: expected a video file, '", path,
             "' does not exist or is not a regular file");
    TV_CHECK(std::filesystem::file_size(path, ec) > 0, "VideoReader: '", path, "' is empty (0 bytes)");
    open_();
    scan_packets_();
    // Decode the first frame now: an undecodable stream fails here, and the true size comes from a real
    // frame, never from the header (a broken header can claim 12336x12336).
    bool ok = false;
    try {
      rewind_();
      ok = next_frame_();
      if (ok && cur_ != 0) throw Inconsistent{};
    } catch (const Inconsistent&) {  // the first frame out is not the smallest pts: read sequentially
      make_sequential_();
      rewind_();
      ok = next_frame_();
    }
    TV_CHECK(ok, "VideoReader: no decodable video frame in '", path_, "' (", codec(), " stream)");
    const int rot = rotation_;
    const bool swap = rot == 90 || rot == 270;
    width_ = swap ? frame_->height : frame_->width;
    height_ = swap ? frame_->width : frame_->height;
  }

  VideoReader(const VideoReader&) = delete;
  VideoReader& operator=(const VideoReader&) = delete;
  VideoReader(VideoReader&&) = default;
  VideoReader& operator=(VideoReader&&) = default;

  const std::string& path() const { return path_; }
  // Decodable frames (found once: see the top of this file).
  int64_t frame_count() const {
    if (count_ < 0) count_frames_();
    return count_;
  }
  // Average frame rate as the container states it (avg_frame_rate, else r_frame_rate); 0 if unknown.
  double fps() const { return fps_; }
  // Seconds, from the stream's duration, else the container's; 0 if unknown.
  double duration() const { return duration_; }
  // Size of the frames read() returns, i.e. after rotation.
  int64_t width() const { return width_; }
  int64_t height() const { return height_; }
  // Clockwise degrees (0, 90, 180, 270) applied to the stored frames to show them upright.
  int rotation() const { return rotation_; }
  std::string codec() const { return avcodec_get_name(fmt_->streams[vidx_]->codecpar->codec_id); }
  std::string container() const { return fmt_->iformat->name; }

  // Frames at the given indices, in the order asked; indices may repeat and come in any order.
  Clip read(const std::vector<int64_t>& indices) {
    if (indices.empty()) return {};
    const int64_t n = frame_count();
    for (int64_t i : indices)
      TV_CHECK(i >= 0 && i < n, "VideoReader: frame index ", i, " out of range for '", path_, "' with ", n, " frames");
    std::vector<int64_t> wanted(indices);
    std::sort(wanted.begin(), wanted.end());
    wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
    std::vector<Image> got;
    // A disagreement between the pts table and the decoder turns the file sequential; then read again.
    while (!try_read_(wanted, got)) {
    }
    // Each frame is moved out at its last use and copied before that (frames are megabytes).
    std::vector<size_t> at(indices.size()), last(wanted.size());
    for (size_t j = 0; j < indices.size(); ++j) {
      at[j] = static_cast<size_t>(std::lower_bound(wanted.begin(), wanted.end(), indices[j]) - wanted.begin());
      last[at[j]] = j;
    }
    Clip out;
    out.reserve(indices.size());
    for (size_t j = 0; j < indices.size(); ++j) {
      if (last[at[j]] == j) out.push_back(std::move(got[at[j]]));
      else out.push_back(got[at[j]]);
    }
    return out;
  }
  Image frame(int64_t i) { return std::move(read({i})[0]); }

  // Decodes the whole file and returns the frames that came out; frame_count() agrees from then on. For
  // diagnostics (probe, check-videos): frame_count() may count a damaged H.264 packet that decodes to nothing
  // until a read decodes through it.
  int64_t count_decoded() {
    if (seekable_) {
      try {
        seek_to_key_(0);
        while (next_frame_()) {
        }
        if (expect_ == static_cast<int64_t>(pts_.size())) {  // every frame of the pts table, in order
          count_ = expect_;
          return count_;
        }
      } catch (const Inconsistent&) {
      }
      make_sequential_();
    }
    count_ = -1;
    count_frames_();  // sequential: decodes all of it
    return count_;
  }

 private:
  static constexpr int kMaxConsecutiveErrors = 64;

  void open_format_() const {
    fmt_.reset();
    AVFormatContext* raw = nullptr;
    // Only the named local file, and only as one of the containers: FFmpeg checks the format before its
    // demuxer reads anything, and nothing opened from the file may use another protocol.
    AVDictionary* options = detail::local_file_options();
    av_dict_set(&options, "format_whitelist", detail::kVideoContainers, 0);
    int r = avformat_open_input(&raw, detail::local_file_url(path_).c_str(), nullptr, &options);
    av_dict_free(&options);
    if (r < 0) {
      const std::string found = detail::probe_container(path_);
      TV_CHECK(found.empty() || av_match_list(found.c_str(), detail::kVideoContainers, ',') > 0, "VideoReader: '",
               path_, "' is a '", found, "' file, not a video container; expected one of ", detail::kVideoContainers,
               " (playlists and lists of other files are refused)");
      TV_FAIL("VideoReader: cannot open '", path_, "' as a media file: ", detail::av_error_string(r));
    }
    fmt_.reset(raw);
    // The frame size the container states is checked before anything decodes; the decoders that look at frames
    // for the stream info refuse oversized ones before allocating them (and then forget the stated size), and
    // sizes only the stream info finds are checked after it.
    check_stated_frame_sizes_();
    std::vector<AVDictionary*> codec_options(fmt_->nb_streams, nullptr);
    for (AVDictionary*& o : codec_options) av_dict_set_int(&o, "max_pixels", kMaxFramePixels, 0);
    r = avformat_find_stream_info(fmt_.get(), codec_options.data());
    for (AVDictionary*& o : codec_options) av_dict_free(&o);
    TV_CHECK(r >= 0, "VideoReader: cannot read stream info of '", path_, "': ", detail::av_error_string(r));
    check_stated_frame_sizes_();
    for (unsigned s = 0; vidx_ >= 0 && s < fmt_->nb_streams; ++s)
      if (static_cast<int>(s) != vidx_) fmt_->streams[s]->discard = AVDISCARD_ALL;  // skip audio, subtitles
  }

  // Every video stream's frame size within the cap (attached pictures, such as cover art, are never decoded).
  void check_stated_frame_sizes_() const {
    for (unsigned s = 0; s < fmt_->nb_streams; ++s) {
      const AVStream* st = fmt_->streams[s];
      if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO && !(st->disposition & AV_DISPOSITION_ATTACHED_PIC))
        check_frame_size(st->codecpar->width, st->codecpar->height, "VideoReader", path_);
    }
  }

  void open_() {
    open_format_();
    const AVCodec* dec = nullptr;
    int r = av_find_best_stream(fmt_.get(), AVMEDIA_TYPE_VIDEO, -1, -1, &dec, 0);
    TV_CHECK(r != AVERROR_STREAM_NOT_FOUND, "VideoReader: no video stream in '", path_, "' (",
             fmt_->nb_streams, " stream(s), container ", fmt_->iformat->name, ")");
    TV_CHECK(r >= 0 && dec, "VideoReader: no decoder for the video stream of '", path_, "' (codec ",
             avcodec_get_name(fmt_->streams[std::max(r, 0)]->codecpar->codec_id), ")");
    vidx_ = r;
    AVStream* st = fmt_->streams[vidx_];
    for (unsigned s = 0; s < fmt_->nb_streams; ++s)
      if (static_cast<int>(s) != vidx_) fmt_->streams[s]->discard = AVDISCARD_ALL;
    cc_.reset(avcodec_alloc_context3(dec));
    TV_CHECK(cc_, "VideoReader: out of memory opening '", path_, "'");
    r = avcodec_parameters_to_context(cc_.get(), st->codecpar);
    TV_CHECK(r >= 0, "VideoReader: bad codec parameters in '", path_, "': ", detail::av_error_string(r));
    cc_->thread_count = threads_;
    cc_->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    cc_->pkt_timebase = st->time_base;
    cc_->max_pixels = kMaxFramePixels;  // frames larger than the stream stated are refused too, before allocation
    r = avcodec_open2(cc_.get(), dec, nullptr);
    TV_CHECK(r >= 0, "VideoReader: cannot open the ", dec->name, " decoder for '", path_, "': ", detail::av_error_string(r));
    frame_.reset(av_frame_alloc());
    pkt_.reset(av_packet_alloc());
    TV_CHECK(frame_ && pkt_, "VideoReader: out of memory opening '", path_, "'");

    AVRational rate = st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0 ? st->avg_frame_rate : st->r_frame_rate;
    fps_ = rate.num > 0 && rate.den > 0 ? av_q2d(rate) : 0.0;
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0) duration_ = static_cast<double>(st->duration) * av_q2d(st->time_base);
    else if (fmt_->duration != AV_NOPTS_VALUE && fmt_->duration > 0) duration_ = static_cast<double>(fmt_->duration) / AV_TIME_BASE;
    // av_display_rotation_get gives the counter-clockwise angle of the display matrix.
    if (const uint8_t* m = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, nullptr)) {
      double ccw = av_display_rotation_get(reinterpret_cast<const int32_t*>(m));
      if (ccw == ccw) {  // not NaN
        int cw = static_cast<int>(std::lround(-ccw / 90.0)) * 90 % 360;
        rotation_ = cw < 0 ? cw + 360 : cw;
      }
    }
  }

  // Length in bytes of the NAL unit size fields of length-prefixed H.264/HEVC (avcC/hvcC extradata), 0 for
  // other codecs and Annex B streams (start codes), which the packet check does not cover.
  int nal_length_size_() const {
    const AVCodecParameters* par = fmt_->streams[vidx_]->codecpar;
    const uint8_t* x = par->extradata;
    if (par->codec_id == AV_CODEC_ID_H264 && par->extradata_size >= 7 && x[0] == 1) return (x[4] & 3) + 1;
    if (par->codec_id == AV_CODEC_ID_HEVC && par->extradata_size >= 23 && (x[0] || x[1] || x[2] > 1)) return (x[21] & 3) + 1;
    return 0;
  }

  // True if the packet's NAL units tile it exactly and one of them carries a picture: a packet that fails
  // this decodes to nothing (corrupted.mp4's packet 30: "Invalid NAL unit size", no frame).
  bool well_formed_(const AVPacket& p, int len_size) const {
    if (p.size <= 0 || (p.flags & AV_PKT_FLAG_CORRUPT)) return false;
    const bool hevc = fmt_->streams[vidx_]->codecpar->codec_id == AV_CODEC_ID_HEVC;
    bool picture = false;
    for (int64_t at = 0; at < p.size;) {
      if (at + len_size >= p.size) return false;
      int64_t n = 0;
      for (int b = 0; b < len_size; ++b) n = (n << 8) | p.data[at + b];
      at += len_size;
      if (n <= 0 || n > p.size - at || (p.data[at] & 0x80)) return false;  // forbidden_zero_bit
      const int type = hevc ? (p.data[at] >> 1) & 0x3f : p.data[at] & 0x1f;
      picture = picture || (hevc ? type < 32 : type >= 1 && type <= 5);
      at += n;
    }
    return picture;
  }

  // One pass over the demuxer: the pts table, the key frames, where the first packet lies.
  void scan_packets_() {
    std::vector<std::pair<int64_t, bool>> pkts;  // pts, key
    bool all_pts = true;
    const int len_size = nal_length_size_();
    bool well_formed = len_size > 0;  // a read error (a packet may be lost there) also clears it
    int errors = 0;
    for (;;) {
      int r = av_read_frame(fmt_.get(), pkt_.get());
      if (r == AVERROR_EOF) break;
      if (r < 0) {
        well_formed = false;
        if (++errors > kMaxConsecutiveErrors) break;
        continue;
      }
      errors = 0;
      if (pkt_->stream_index == vidx_ && !(pkt_->flags & AV_PKT_FLAG_DISCARD)) {
        if (pkt_->pts == AV_NOPTS_VALUE) all_pts = false;
        pkts.emplace_back(pkt_->pts, (pkt_->flags & AV_PKT_FLAG_KEY) != 0);
        well_formed = well_formed && well_formed_(*pkt_, len_size);
      }
      av_packet_unref(pkt_.get());
    }
    TV_CHECK(!pkts.empty(), "VideoReader: no video packets could be read from '", path_, "' (container ",
             fmt_->iformat->name, ", codec ", codec(), ")");
    std::sort(pkts.begin(), pkts.end());
    for (size_t i = 0; i < pkts.size(); ++i) {
      pts_.push_back(pkts[i].first);
      if (pkts[i].second) keys_.push_back(static_cast<int64_t>(i));
    }
    seekable_ = all_pts && std::adjacent_find(pts_.begin(), pts_.end()) == pts_.end() && !keys_.empty() && keys_[0] == 0;
    packets_checked_ = len_size > 0 ? (well_formed ? 1 : -1) : 0;
  }

  void rewind_() const {
    int r = av_seek_frame(fmt_.get(), vidx_, INT64_MIN / 2, AVSEEK_FLAG_BACKWARD);
    if (r < 0) r = avformat_seek_file(fmt_.get(), -1, INT64_MIN, 0, 0, 0);
    if (r < 0) open_format_();  // some broken files cannot seek: reading them again from the top does
    avcodec_flush_buffers(cc_.get());
    draining_ = false;
    next_seq_ = 0;
    cur_ = -1;
    floor_ = expect_ = 0;
  }

  // Seeks to the key frame at or before frame `target` (seekable files only).
  void seek_to_key_(int64_t target) const {
    auto it = std::upper_bound(keys_.begin(), keys_.end(), target);
    const int64_t key = *(it - 1);  // keys_[0] == 0 <= target
    if (key == 0) return rewind_();
    int r = av_seek_frame(fmt_.get(), vidx_, pts_[static_cast<size_t>(key)], AVSEEK_FLAG_BACKWARD);
    if (r < 0) return rewind_();
    avcodec_flush_buffers(cc_.get());
    draining_ = false;
    cur_ = -1;
    floor_ = expect_ = key;
  }

  struct Inconsistent {};  // the pts table and the decoded frames disagree

  // Decodes the next frame into frame_ and sets cur_ to its index; false at the end of the stream.
  bool next_frame_() const {
    cur_ = -1;  // avcodec_receive_frame empties frame_ first
    int errors = 0;
    for (;;) {
      int r = avcodec_receive_frame(cc_.get(), frame_.get());
      if (r == 0) {
        if (!seekable_) {
          cur_ = next_seq_++;
        } else {
          auto it = std::lower_bound(pts_.begin(), pts_.end(), frame_->pts);
          if (frame_->pts == AV_NOPTS_VALUE || it == pts_.end() || *it != frame_->pts) throw Inconsistent{};
          const int64_t i = it - pts_.begin();
          // From the key frame on, frames must come out as key, key + 1, ...: a gap is a packet that decoded
          // to nothing. (Leading frames of an open GOP belong before the key frame.)
          if (i >= floor_ && i != expect_++) throw Inconsistent{};
          cur_ = i;
        }
        return true;
      }
      if (r == AVERROR_EOF) return false;
      if (r != AVERROR(EAGAIN)) {
        TV_CHECK(++errors <= kMaxConsecutiveErrors, "VideoReader: decoding '", path_, "' failed ", errors,
                 " times in a row: ", detail::av_error_string(r));
        continue;
      }
      if (draining_) return false;
      r = av_read_frame(fmt_.get(), pkt_.get());
      if (r < 0) {
        // Past too many read errors the rest of the file is treated as missing: drain what was decoded.
        if (r == AVERROR_EOF || ++errors > kMaxConsecutiveErrors) {
          avcodec_send_packet(cc_.get(), nullptr);
          draining_ = true;
        }
        continue;
      }
      if (pkt_->stream_index != vidx_) {
        av_packet_unref(pkt_.get());
        continue;
      }
      r = avcodec_send_packet(cc_.get(), pkt_.get());
      av_packet_unref(pkt_.get());
      if (r < 0 && r != AVERROR(EAGAIN)) {
        TV_CHECK(++errors <= kMaxConsecutiveErrors, "VideoReader: decoding '", path_, "' failed ", errors,
                 " times in a row: ", detail::av_error_string(r));
      }
    }
  }

  void make_sequential_() const {
    seekable_ = false;
    count_ = -1;
    cur_ = -1;
  }

  void count_frames_() const {
    if (seekable_ && packets_checked_ > 0) {
      count_ = static_cast<int64_t>(pts_.size());
      return;
    }
    if (seekable_) {
      try {
        // A packet that failed the check may lie in any GOP: then decode them all.
        const int64_t key = packets_checked_ < 0 ? 0 : keys_.back();
        seek_to_key_(key);
        while (next_frame_()) {
        }
        if (expect_ > key) {  // next_frame_ checked that key, key + 1, ... came out
          count_ = expect_;
          return;
        }
      } catch (const Inconsistent&) {
      }
      make_sequential_();
    }
    rewind_();
    int64_t n = 0;
    while (next_frame_()) n = cur_ + 1;
    cur_ = -1;
    TV_CHECK(n > 0, "VideoReader: no decodable video frame in '", path_, "'");
    count_ = n;
  }

  // Fills got[k] with frame wanted[k] (sorted, unique); false if the file turned sequential meanwhile.
  bool try_read_(const std::vector<int64_t>& wanted, std::vector<Image>& got) {
    got.assign(wanted.size(), Image());
    try {
      for (size_t k = 0; k < wanted.size(); ++k) {
        const int64_t t = wanted[k];
        if (cur_ == t) {  // still in frame_, e.g. frame 0 decoded at open
          got[k] = to_rgb_();
          continue;
        }
        const bool valid = cur_ >= 0 && !draining_;
        if (seekable_) {
          const int64_t key = *(std::upper_bound(keys_.begin(), keys_.end(), t) - 1);
          if (!valid || t <= cur_ || key > cur_ + 1) seek_to_key_(t);
        } else if (!valid || t <= cur_) {
          rewind_();
        }
        bool first = true;
        for (;;) {
          if (!next_frame_()) {
            if (seekable_) throw Inconsistent{};  // the pts table promised frame t
            TV_CHECK(false, "VideoReader: '", path_, "' ended before frame ", t, " (", frame_count(), " frames counted)");
          }
          if (seekable_ && first && cur_ > t) throw Inconsistent{};  // the seek landed past the frame
          first = false;
          if (cur_ == t) break;
          if (cur_ > t) throw Inconsistent{};  // frame t never came out: a packet decoded to nothing
        }
        got[k] = to_rgb_();
      }
      return true;
    } catch (const Inconsistent&) {
      TV_CHECK(seekable_, "VideoReader: internal error: inconsistent frame order in sequential mode for '", path_, "'");
      make_sequential_();
      const int64_t n = frame_count();
      for (int64_t i : wanted)
        TV_CHECK(i < n, "VideoReader: frame index ", i, " out of range for '", path_, "' with ", n, " decodable frames");
      return false;
    }
  }

  Image to_rgb_() {
    const AVFrame* f = frame_.get();
    TV_CHECK(f->width > 0 && f->height > 0, "VideoReader: decoded an empty frame in '", path_, "'");
    sws_.reset(sws_getCachedContext(sws_.release(), f->width, f->height, static_cast<AVPixelFormat>(f->format),
                                    f->width, f->height, AV_PIX_FMT_RGB24, SWS_BILINEAR, nullptr, nullptr, nullptr));
    TV_CHECK(sws_, "VideoReader: cannot convert pixel format ",
             av_get_pix_fmt_name(static_cast<AVPixelFormat>(f->format)), " to RGB for '", path_, "'");
    Image img = detail::new_rgb_image(f->height, f->width);
    // swscale's SIMD yuv420p converter works in blocks of 16 pixels: with unpadded rows it skips a row's tail
    // or writes past it (FFmpeg 5.1, e.g. 854 or 568 wide). yuv420p rows of a multiple of 64 bytes (1920,
    // 1280, 320 wide) need no padding and are converted in place; the rest goes through a padded buffer.
    const int row = f->width * 3;
    const int stride = FFALIGN(row, 64);
    const bool in_place = f->format == AV_PIX_FMT_YUV420P && stride == row &&
                          reinterpret_cast<uintptr_t>(img.pixels.data()) % 16 == 0;
    if (!in_place) scratch_.resize(static_cast<size_t>(stride) * static_cast<size_t>(f->height) + 64);
    uint8_t* dst[4] = {in_place ? img.pixels.data() : scratch_.data(), nullptr, nullptr, nullptr};
    int dst_stride[4] = {stride, 0, 0, 0};
    sws_scale(sws_.get(), f->data, f->linesize, 0, f->height, dst, dst_stride);
    if (!in_place)
      for (int y = 0; y < f->height; ++y)
        std::memcpy(img.row(y), scratch_.data() + static_cast<size_t>(y) * stride, static_cast<size_t>(row));
    if (rotation_ != 0) return detail::rotate_clockwise(img, rotation_);
    return img;
  }

  std::string path_;
  int threads_ = 2;
  mutable std::unique_ptr<AVFormatContext, detail::FormatCloser> fmt_;
  mutable std::unique_ptr<AVCodecContext, detail::CodecFreer> cc_;
  mutable std::unique_ptr<AVFrame, detail::FrameFreer> frame_;
  mutable std::unique_ptr<AVPacket, detail::PacketFreer> pkt_;
  mutable std::unique_ptr<SwsContext, detail::SwsFreer> sws_;
  mutable std::vector<uint8_t> scratch_;
  int vidx_ = -1;
  double fps_ = 0, duration_ = 0;
  int64_t width_ = 0, height_ = 0;
  int rotation_ = 0;
  std::vector<int64_t> pts_;   // pts of the video packets, sorted: frame i has pts_[i] (seekable files)
  std::vector<int64_t> keys_;  // frame indices of the key frames, sorted
  mutable bool seekable_ = false;
  mutable bool draining_ = false;
  mutable int64_t next_seq_ = 0;  // index of the next frame out of the decoder (sequential files)
  mutable int64_t cur_ = -1;      // index of the frame in frame_, -1 when none / position unknown
  mutable int64_t floor_ = 0;     // seekable: the key frame decoding started from
  mutable int64_t expect_ = 0;    // seekable: index the next frame at or after floor_ must have
  mutable int64_t count_ = -1;
  int packets_checked_ = 0;  // the scan's packet check: 1 all passed (one frame per packet), -1 some failed, 0 not done
};

}  // namespace tv::data
