#pragma once
// The built-in synthetic action dataset (the project's demo dataset), written as real MP4 files with
// MMAction2 video lists, so it goes through exactly the pipeline a real dataset does.
//
// Every class comes with its time-reversed twin (left/right, up/down, clockwise/counter-clockwise,
// growing/shrinking, fading in/out): the set of frames of a video says little about its class, only their
// order does, so a model that ignores time sits at chance within each pair. Each video draws its object
// (disc, square or triangle; plain, striped or checked; colour, size, place, speed) and a static textured
// background with sensor noise. The translations move the object unchanged: pooled statistics of a frame
// (what DNR's relay reads) stay the same in every frame, and only local motion (what a temporal shift sees)
// tells the twins apart. Growing, fading and the turning hand change them over time (size, brightness,
// orientation), in opposite orders for the twins.
//
// Layout written by write_synth_dataset(out_dir, options):
//   out_dir/videos/<class>/<split>_<NNNN>.mp4      one video per sample
//   out_dir/train_list.txt, out_dir/val_list.txt   `<class>/<split>_<NNNN>.mp4 <label>` (data prefix out_dir/videos)
//   out_dir/classes.txt                            class names, one a line, in label order
//   out_dir/synth_manifest.txt                     seed, size, frames, fps, generator version, preset (other
//                                                  than demo): a resumed run must match
// A video is a pure function of (seed, preset, class name, split, index): a subset of classes gives the same
// videos for the classes it keeps, any thread count gives the same files, and an interrupted run resumes.
// The presets: "demo" (the classes below) and "hard" (further down: the ablation benchmark).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tinyvid/core/error.hpp"
#include "tinyvid/core/progress.hpp"
#include "tinyvid/core/generator.hpp"
#include "tinyvid/data/image.hpp"
#include "tinyvid/data/video.hpp"
#include "tinyvid/data/video_writer.hpp"
#include "tinyvid/io/file.hpp"

namespace tv::data {

// The classes in label order (of the full set); SynthOptions::classes picks a subset by name.
inline const std::vector<std::string>& synth_class_names() {
  static const std::vector<std::string> names = {
      "move_left",  "move_right", "move_up", "move_down", "rotate_clockwise", "rotate_counterclockwise",
      "grow",       "shrink",     "fade_in", "fade_out"};
  return names;
}

// The presets: "demo" (the classes above, the demo's dataset, unchanged since generator 2) and "hard" (the
// ablation benchmark: synth_hard_classes() below, README "A harder synthetic dataset").
inline const std::vector<std::string>& synth_presets() {
  static const std::vector<std::string> names = {"demo", "hard"};
  return names;
}

struct SynthOptions {
  std::string preset = "demo";
  std::vector<std::string> classes{};  // empty: all of synth_class_names(preset), in that order
  int64_t train_per_class = 100;
  int64_t val_per_class = 20;
  int64_t size = 112;  // frames are size x size (even)
  int64_t frames = 32;
  double fps = 8;
  uint64_t seed = 0;
  int threads = 0;        // 0: the hardware's threads; each video is encoded on one thread
  bool progress = false;  // a progress line on stderr
};

struct SynthReport {
  int64_t written = 0, skipped = 0;  // skipped: already complete on disk (a resumed run)
  double seconds = 0;
};

namespace detail {

inline uint64_t synth_video_seed(uint64_t seed, const std::string& cls, int split, int64_t index) {
  uint64_t h = mix_seed(seed);
  for (unsigned char c : cls) h = mix_seed(h ^ c);
  h = mix_seed(h ^ static_cast<uint64_t>(split));
  return mix_seed(h ^ static_cast<uint64_t>(index));
}

inline float clamp01(float v) { return v < 0.f ? 0.f : (v > 1.f ? 1.f : v); }

// Distance from p to the segment a-b.
inline float segment_distance(float px, float py, float ax, float ay, float bx, float by) {
  const float dx = bx - ax, dy = by - ay;
  const float len2 = dx * dx + dy * dy;
  float t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0.f;
  t = clamp01(t);
  const float qx = ax + t * dx - px, qy = ay + t * dy - py;
  return std::sqrt(qx * qx + qy * qy);
}

// An object's look, drawn once per video: its outline (disc, square or triangle, turned by a random angle)
// and the texture on it (plain, stripes or checks that move with it).
struct SynthShape {
  enum Outline { kDisc, kSquare, kTriangle } outline = kDisc;
  enum Texture { kPlain, kStripes, kChecks } texture = kPlain;
  float cos_a = 1, sin_a = 0;  // the outline's and the texture's orientation
  float period = 6, phase = 0;

  static SynthShape draw(Generator& g, float size) {
    constexpr double kTwoPi = 6.283185307179586476925286766559;
    SynthShape s;
    s.outline = static_cast<Outline>(std::min<int64_t>(2, static_cast<int64_t>(g.next_double() * 3)));
    s.texture = static_cast<Texture>(std::min<int64_t>(2, static_cast<int64_t>(g.next_double() * 3)));
    const double a = g.uniform(0, kTwoPi);
    s.cos_a = static_cast<float>(std::cos(a));
    s.sin_a = static_cast<float>(std::sin(a));
    s.period = size * static_cast<float>(g.uniform(0.04, 0.09)) + 2.f;
    s.phase = static_cast<float>(g.uniform(0, kTwoPi));
    return s;
  }
  // How much of the pixel at offset (dx, dy) from the centre a shape of radius r covers (a 1-pixel soft edge);
  // the three outlines have the area of a disc of radius r.
  float cover(float dx, float dy, float r) const {
    const float u = cos_a * dx + sin_a * dy, v = -sin_a * dx + cos_a * dy;
    float inside;  // distance inside the outline (negative: outside)
    if (outline == kDisc) {
      inside = r - std::hypot(u, v);
    } else if (outline == kSquare) {  // half side sqrt(pi) / 2 r
      inside = 0.8862269f * r - std::max(std::abs(u), std::abs(v));
    } else {  // equilateral triangle, edges at distance sqrt(pi / (3 sqrt 3)) r from the centre
      const float e1 = v, e2 = -0.8660254f * u - 0.5f * v, e3 = 0.8660254f * u - 0.5f * v;
      inside = 0.7775682f * r - std::max(e1, std::max(e2, e3));
    }
    return clamp01(inside + 0.5f);
  }
  // How far from the centre the outline of radius r reaches (its corners), soft edge included: where it must
  // be placed to stay whole in the frame.
  float reach(float r) const {
    const float corner = outline == kDisc ? 1.f : outline == kSquare ? 1.2533141f : 1.5551364f;
    return corner * r + 1.f;
  }
  // Brightness factor of the texture at offset (dx, dy): 0.82..1, so the object stays bright.
  float shade(float dx, float dy) const {
    if (texture == kPlain) return 1.f;
    const float u = cos_a * dx + sin_a * dy, v = -sin_a * dx + cos_a * dy;
    float t;
    if (texture == kStripes) {
      t = 0.5f + 0.5f * std::sin(6.2831853f * u / period + phase);
    } else {
      const auto cu = static_cast<int64_t>(std::floor(u / period)), cv = static_cast<int64_t>(std::floor(v / period));
      t = ((cu + cv) & 1) ? 1.f : 0.f;
    }
    return 0.82f + 0.18f * t;
  }
};

// Renders the frames of one video of class `cls`. All randomness comes from g, drawn before any frame, so
// a class and its twin share the parameter distributions and differ only in the direction of time.
inline Clip render_synth_video(const std::string& cls, int64_t S, int64_t T, Generator& g) {
  const float s = static_cast<float>(S);
  // Background: a dark random tint, a static texture, and a little per-frame sensor noise.
  float base[3];
  for (float& b : base) b = static_cast<float>(g.uniform(25, 70));
  std::vector<float> texture(static_cast<size_t>(S * S));
  for (float& v : texture) v = static_cast<float>(g.normal() * 14.0);
  // The object: a bright colour (every channel high, so it stands out from any background), a random
  // outline and texture.
  float color[3];
  for (float& c : color) c = static_cast<float>(g.uniform(200, 255));
  const SynthShape shape = SynthShape::draw(g, s);

  // One branch per pixel on an int, not on the class name.
  enum Kind { kHorizontal, kVertical, kRotate, kGrow, kFade };
  const Kind kind = (cls == "move_left" || cls == "move_right") ? kHorizontal
                    : (cls == "move_up" || cls == "move_down")  ? kVertical
                    : (cls == "rotate_clockwise" || cls == "rotate_counterclockwise") ? kRotate
                    : (cls == "grow" || cls == "shrink") ? kGrow
                                                         : kFade;
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  const bool reverse = cls == "move_left" || cls == "move_up" || cls == "rotate_counterclockwise" ||
                       cls == "shrink" || cls == "fade_out";
  // Every placement keeps the whole object inside the frame (shape.reach): a cut-off object would change a
  // frame's statistics where they must stay the same.
  auto place = [&](float reach) { return reach + static_cast<float>(g.next_double()) * std::max(0.f, s - 2 * reach); };
  const float radius = s * static_cast<float>(g.uniform(0.08, 0.12)) + 0.5f;
  // Translation: a fixed-size object travelling 30-60% of the frame.
  const float travel = s * static_cast<float>(g.uniform(0.3, 0.6));
  const float margin = shape.reach(radius);
  const float along0 = margin + static_cast<float>(g.next_double()) * std::max(0.f, s - 2 * margin - travel);
  const float across = place(margin);
  // Rotation: a clock hand with the object as the knob at its tip (asymmetric: its direction is visible in
  // every frame); hand plus knob stay within 0.5 s of the frame's centre.
  const float angle0 = static_cast<float>(g.uniform(0, kTwoPi));
  const float turn = static_cast<float>(g.uniform(0.4, 0.9) * kTwoPi);
  const float knob = s * 0.07f + 0.5f;
  const float hand = std::min(s * static_cast<float>(g.uniform(0.26, 0.34)), 0.47f * s - shape.reach(knob));
  const float cx = s / 2 + static_cast<float>(g.uniform(-0.03, 0.03)) * s, cy = s / 2 + static_cast<float>(g.uniform(-0.03, 0.03)) * s;
  // Growing and fading: the object at a random place; radius from small to large, opacity from 0 to 1.
  const float r_small = s * static_cast<float>(g.uniform(0.04, 0.07)) + 0.5f, r_large = s * static_cast<float>(g.uniform(0.16, 0.24));
  const float r_fade = s * 0.16f;
  const float at_reach = shape.reach(kind == kGrow ? r_large : r_fade);
  const float px = place(at_reach), py = place(at_reach);
  const uint64_t noise_seed = g.next_u64();

  Clip clip;
  clip.reserve(static_cast<size_t>(T));
  Generator noise(noise_seed);
  for (int64_t t = 0; t < T; ++t) {
    const float u0 = T > 1 ? static_cast<float>(t) / static_cast<float>(T - 1) : 0.f;
    const float u = reverse ? 1.f - u0 : u0;  // the twin plays the same motion backwards
    // Where the object is in this frame, its size and opacity.
    float ox = px, oy = py, r = radius, opacity = 1.f;
    float tx = 0, ty = 0;  // rotation: the hand's tip
    if (kind == kHorizontal) {
      ox = along0 + u * travel, oy = across;
    } else if (kind == kVertical) {
      ox = across, oy = along0 + u * travel;
    } else if (kind == kRotate) {
      // Image y points down, so a growing angle turns clockwise on screen.
      const float a = angle0 + u * turn;
      tx = cx + hand * std::cos(a), ty = cy + hand * std::sin(a);
      ox = tx, oy = ty, r = knob;
    } else if (kind == kGrow) {
      r = r_small + u * (r_large - r_small);
    } else {  // fade_in, fade_out
      r = r_fade, opacity = u;
    }
    Image img(S, S, 3);
    for (int64_t y = 0; y < S; ++y) {
      for (int64_t x = 0; x < S; ++x) {
        const float fx = static_cast<float>(x) + 0.5f, fy = static_cast<float>(y) + 0.5f;
        const float dx = fx - ox, dy = fy - oy;
        float cover = opacity * shape.cover(dx, dy, r);  // how much of this pixel the object covers
        if (kind == kRotate)
          cover = std::max(cover, clamp01(s * 0.035f + 0.5f - segment_distance(fx, fy, cx, cy, tx, ty) + 0.5f));
        const float lit = shape.shade(dx, dy);
        const float n = static_cast<float>(noise.normal() * 3.0);
        const float bg = texture[static_cast<size_t>(y * S + x)] + n;
        uint8_t* p = img.row(y) + x * 3;
        for (int c = 0; c < 3; ++c) {
          const float v = (1.f - cover) * (base[c] + bg) + cover * color[c] * lit;
          p[c] = static_cast<uint8_t>(std::lround(std::clamp(v, 0.f, 255.f)));
        }
      }
    }
    clip.push_back(std::move(img));
  }
  return clip;
}

// ---- The "hard" preset: the ablation benchmark (see the README's "harder synthetic dataset") ----
//
// 18 classes in three families of time-reversed twins, every video also carrying distractors, camera jitter,
// speed variation and (often) an occluding bar. A twin is its class's video played backwards (every moving part,
// jitter included; only the sensor noise is drawn anew), so a class and its twin have the same frames as a set
// and only their order tells them apart:
//   order:        the bright target does one sub-action in the first third and another in the last third, the
//                 middle third still: flash (a glow around it), jump (it slides a fifth of the frame and stays),
//                 swell (it grows and shrinks back). X_then_Y against Y_then_X: the order of two events far apart.
//   drift:        the whole frame drifts slowly over the clip: illumination (brighten/darken), colour balance
//                 (warm: red up, blue down / cool), scale (zoom_in/zoom_out about a point near the centre). Each
//                 video starts from a random gain, cast and place, so one frame's level says nothing of its class.
//   local_motion: the bright target moves right/left, down/up or orbits clockwise/counter-clockwise while
//                 dimmer distractors move in random directions: only where the target goes tells the class.
// The knobs the tuning moves are in HardTuning; a change to them (or to the drawing) bumps kSynthHardVersion.

// The family of each hard class, and which action it plays forward (reverse: its twin, played backwards).
struct SynthHardClass {
  const char* name;
  const char* family;  // "order", "drift", "local_motion"
  enum Action { kFlashJump, kFlashSwell, kJumpSwell, kIllumination, kColour, kZoom, kHorizontal, kVertical, kOrbit } action;
  bool reverse;
};

inline const std::vector<SynthHardClass>& synth_hard_classes() {
  using C = SynthHardClass;
  static const std::vector<C> classes = {
      {"flash_then_jump", "order", C::kFlashJump, false},   {"jump_then_flash", "order", C::kFlashJump, true},
      {"flash_then_swell", "order", C::kFlashSwell, false}, {"swell_then_flash", "order", C::kFlashSwell, true},
      {"jump_then_swell", "order", C::kJumpSwell, false},   {"swell_then_jump", "order", C::kJumpSwell, true},
      {"brighten", "drift", C::kIllumination, false},       {"darken", "drift", C::kIllumination, true},
      {"warm", "drift", C::kColour, false},                 {"cool", "drift", C::kColour, true},
      {"zoom_in", "drift", C::kZoom, false},                {"zoom_out", "drift", C::kZoom, true},
      {"target_right", "local_motion", C::kHorizontal, false}, {"target_left", "local_motion", C::kHorizontal, true},
      {"target_down", "local_motion", C::kVertical, false},    {"target_up", "local_motion", C::kVertical, true},
      {"target_orbit_clockwise", "local_motion", C::kOrbit, false},
      {"target_orbit_counterclockwise", "local_motion", C::kOrbit, true}};
  return classes;
}

// The difficulty knobs of the hard preset, in fractions of the frame side or of the clip, in one place.
struct HardTuning {
  // order: each event lasts this much of the clip (long enough for 8 sampled frames out of 32 to catch it)
  double event_min = 0.18, event_max = 0.26;
  double flash_glow = 120;       // added brightness at the target's centre at the flash's peak
  double jump_min = 0.2, jump_max = 0.3;  // how far the jump goes
  double swell = 0.5;            // radius factor 1 + swell at the swell's peak
  // drift: half the change over the clip, and the random start levels
  double gain_min = 0.7, gain_max = 1.3, gain_drift_min = 0.15, gain_drift_max = 0.25;
  double cast_max = 0.12, cast_drift_min = 0.08, cast_drift_max = 0.14;
  double zoom_drift_min = 0.15, zoom_drift_max = 0.3;
  // local motion: how far the target travels, the orbit's radius and turn (in turns)
  double travel_min = 0.25, travel_max = 0.45, orbit_min = 0.1, orbit_max = 0.16, turn_min = 0.5, turn_max = 0.9;
  // speed variation: a continuous action runs from t0 to t1 of the clip, its progress raised to a power
  double start_max = 0.25, end_min = 0.75, power_min = 0.6, power_max = 1.7;
  // the pair's look: each pair of twins gives its target a hue of its own (pair i: 360 i / 9 degrees, give or
  // take hue_jitter), the frame-level cue a scene gives a Kinetics class; a twin shares it, so only time tells
  // the twins apart. saturation: how far from white the target's colour is.
  double hue_jitter = 12, saturation = 0.5;
  // nuisances
  int64_t distractors_min = 2, distractors_max = 4;
  double distractor_travel_min = 0.1, distractor_travel_max = 0.4;
  double jitter = 0.015;  // camera shake: up to this much of the side (at least 1 pixel) per frame and axis
  double occluder_probability = 0.6, occluder_width_min = 0.1, occluder_width_max = 0.16;
};
inline constexpr HardTuning kHardTuning{};
inline constexpr int kSynthHardVersion = 2;  // 2: the pair's hue

// One moving object: its look and a straight path from (x0, y0) to (x0 + dx, y0 + dy).
struct HardObject {
  SynthShape shape;
  float color[3] = {0, 0, 0};
  float radius = 1, x0 = 0, y0 = 0, dx = 0, dy = 0;
};

// Everything one hard video is made of, drawn before any frame (tests switch nuisances off in it).
struct HardPlan {
  int64_t size = 0, frames = 0;
  SynthHardClass cls{};
  float base[3] = {0, 0, 0};
  int64_t texture_side = 0;
  float texture_margin = 0;
  std::vector<float> texture;  // texture_side^2, in scene coordinates (the camera zooms and shakes over it)
  HardObject target;
  std::vector<HardObject> distractors;
  // speed variation of continuous actions; the order family's two event windows
  float start = 0, end = 1, power = 1;
  float first_begin = 0, first_end = 0, last_begin = 1, last_end = 1;
  // action amounts
  float gain = 1, gain_drift = 0, cast = 0, cast_drift = 0, zoom_drift = 0, zoom_x = 0, zoom_y = 0;
  float orbit_x = 0, orbit_y = 0, orbit_radius = 0, orbit_angle = 0, orbit_turn = 0;
  // nuisances: per-frame camera offset (in forward time), the occluding bar
  std::vector<std::pair<int, int>> jitter;
  bool occluder = false, occluder_vertical = true;
  float occluder_width = 0, occluder_begin = 0, occluder_end = 1, occluder_color[3] = {0, 0, 0};
  uint64_t noise_seed = 0;
};

inline const SynthHardClass& synth_hard_class(const std::string& name) {
  for (const SynthHardClass& c : synth_hard_classes())
    if (name == c.name) return c;
  std::string known;
  for (const SynthHardClass& c : synth_hard_classes()) known += (known.empty() ? "" : ", ") + std::string(c.name);
  TV_FAIL("synth: unknown class '", name, "' of preset 'hard'; its classes: ", known);
}

inline HardPlan draw_hard_plan(const std::string& cls, int64_t S, int64_t T, Generator& g) {
  const HardTuning& k = kHardTuning;
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  const float s = static_cast<float>(S);
  HardPlan p;
  p.size = S, p.frames = T, p.cls = synth_hard_class(cls);
  auto uni = [&](double lo, double hi) { return static_cast<float>(g.uniform(lo, hi)); };
  // A start in [lo, hi] (or lo when the range is empty).
  auto between = [&](float lo, float hi) { return lo + static_cast<float>(g.next_double()) * std::max(0.f, hi - lo); };
  // A straight path of (dx, dy) that keeps an object of this reach inside the frame at both ends.
  auto path = [&](HardObject& o, float reach) {
    o.x0 = between(reach - std::min(0.f, o.dx), s - reach - std::max(0.f, o.dx));
    o.y0 = between(reach - std::min(0.f, o.dy), s - reach - std::max(0.f, o.dy));
  };

  // Background: as the demo's (dark tint, static texture), on a canvas wider than the frame by the shake.
  for (float& b : p.base) b = uni(25, 70);
  const int64_t shake = std::max<int64_t>(1, std::lround(k.jitter * s));
  p.texture_margin = static_cast<float>(shake + 2);
  p.texture_side = S + 2 * (shake + 2);
  p.texture.resize(static_cast<size_t>(p.texture_side * p.texture_side));
  for (float& v : p.texture) v = static_cast<float>(g.normal() * 14.0);

  // The target: small, bright and of its pair's hue; distractors dimmer (70-150), so it is the one to follow.
  const float pair = static_cast<float>(p.cls.action);  // the action numbers the pairs 0..8
  const float hue = pair * 40.f + uni(-k.hue_jitter, k.hue_jitter);
  const float value = uni(215, 255);
  for (int c = 0; c < 3; ++c) {  // HSV to RGB: channel c peaks at hue 0, 120, 240 degrees (R, G, B)
    float away = std::fmod(std::abs(hue - 120.f * static_cast<float>(c)) + 720.f, 360.f);
    away = std::min(away, 360.f - away);  // 0..180 degrees from the channel's own hue
    const float full = std::clamp(2.f - away / 60.f, 0.f, 1.f);  // 1 within 60 degrees, 0 beyond 120
    p.target.color[c] = value * (1 - static_cast<float>(k.saturation) * (1 - full));
  }
  p.target.shape = SynthShape::draw(g, s);
  p.target.radius = s * uni(0.06, 0.09) + 0.5f;
  const int64_t n_distractors = k.distractors_min + static_cast<int64_t>(g.randint(static_cast<uint64_t>(k.distractors_max - k.distractors_min + 1)));
  for (int64_t i = 0; i < n_distractors; ++i) {
    HardObject d;
    for (float& c : d.color) c = uni(70, 150);
    d.shape = SynthShape::draw(g, s);
    d.radius = s * uni(0.05, 0.1) + 0.5f;
    const float a = uni(0, kTwoPi), len = s * uni(k.distractor_travel_min, k.distractor_travel_max);
    d.dx = len * std::cos(a), d.dy = len * std::sin(a);
    path(d, d.shape.reach(d.radius));
    p.distractors.push_back(d);
  }

  // Timing: continuous actions stretched and shifted; events in the first and last thirds.
  p.start = uni(0, k.start_max), p.end = uni(k.end_min, 1);
  p.power = static_cast<float>(std::exp(g.uniform(std::log(k.power_min), std::log(k.power_max))));
  const float d1 = uni(k.event_min, k.event_max), d2 = uni(k.event_min, k.event_max);
  p.first_begin = between(0.02f, 1.f / 3 - d1), p.first_end = p.first_begin + d1;
  p.last_end = 1.f - between(0.02f, 1.f / 3 - d2), p.last_begin = p.last_end - d2;

  // Global levels every class has (a drift class changes one of them over the clip).
  p.gain = uni(k.gain_min, k.gain_max);
  p.cast = uni(-k.cast_max, k.cast_max);
  p.gain_drift = uni(k.gain_drift_min, k.gain_drift_max);
  p.cast_drift = uni(k.cast_drift_min, k.cast_drift_max);
  p.zoom_drift = uni(k.zoom_drift_min, k.zoom_drift_max);
  p.zoom_x = s * uni(0.4, 0.6), p.zoom_y = s * uni(0.4, 0.6);

  // The target's path: a jump (order family, zero for classes without one), a travel or an orbit.
  const float reach = p.target.shape.reach(p.target.radius * (1 + static_cast<float>(k.swell)));
  const auto a = p.cls.action;
  const bool jumps = a == SynthHardClass::kFlashJump || a == SynthHardClass::kJumpSwell;
  const float jump_angle = uni(0, kTwoPi), jump = s * uni(k.jump_min, k.jump_max);
  const float travel = s * uni(k.travel_min, k.travel_max);
  if (jumps) p.target.dx = jump * std::cos(jump_angle), p.target.dy = jump * std::sin(jump_angle);
  if (a == SynthHardClass::kHorizontal) p.target.dx = travel;
  if (a == SynthHardClass::kVertical) p.target.dy = travel;
  path(p.target, reach);
  p.orbit_radius = s * uni(k.orbit_min, k.orbit_max);
  p.orbit_x = between(p.orbit_radius + reach, s - p.orbit_radius - reach);
  p.orbit_y = between(p.orbit_radius + reach, s - p.orbit_radius - reach);
  p.orbit_angle = uni(0, kTwoPi);
  p.orbit_turn = static_cast<float>(g.uniform(k.turn_min, k.turn_max) * kTwoPi);

  // Nuisances: camera shake per frame, an occluding bar crossing the frame during part of the clip. The bar
  // covers any one point for under a tenth of the clip, less than a sub-action lasts, so it never hides one whole.
  p.jitter.resize(static_cast<size_t>(T));
  for (auto& j : p.jitter) {
    j.first = static_cast<int>(g.randint(static_cast<uint64_t>(2 * shake + 1))) - static_cast<int>(shake);
    j.second = static_cast<int>(g.randint(static_cast<uint64_t>(2 * shake + 1))) - static_cast<int>(shake);
  }
  p.occluder = g.next_double() < k.occluder_probability;
  p.occluder_vertical = g.next_double() < 0.5;
  p.occluder_width = s * uni(k.occluder_width_min, k.occluder_width_max);
  const float crossing = uni(0.3, 0.6);
  p.occluder_begin = uni(0, 1 - crossing), p.occluder_end = p.occluder_begin + crossing;
  for (float& c : p.occluder_color) c = uni(40, 110);
  p.noise_seed = g.next_u64();
  return p;
}

// Renders a plan's frames. Time u runs 0..1 over the clip (1..0 for a twin); everything but sensor noise is a
// function of u, so the twin is exactly the class's video backwards.
inline Clip render_hard_video(const HardPlan& p) {
  const HardTuning& k = kHardTuning;
  const int64_t S = p.size, T = p.frames;
  const float s = static_cast<float>(S);
  using C = SynthHardClass;
  const auto action = p.cls.action;
  auto smooth = [](float v) { v = clamp01(v); return v * v * (3 - 2 * v); };
  auto pulse = [](float u, float b, float e) { return u <= b || u >= e ? 0.f : std::sin(3.14159265f * (u - b) / (e - b)); };
  // The texture at scene point (x, y), bilinear (a zoom magnifies it smoothly).
  auto texture = [&](float x, float y) {
    const float fx = x - 0.5f + p.texture_margin, fy = y - 0.5f + p.texture_margin;
    const int64_t n = p.texture_side;
    const int64_t ix = std::clamp<int64_t>(static_cast<int64_t>(std::floor(fx)), 0, n - 2);
    const int64_t iy = std::clamp<int64_t>(static_cast<int64_t>(std::floor(fy)), 0, n - 2);
    const float wx = clamp01(fx - static_cast<float>(ix)), wy = clamp01(fy - static_cast<float>(iy));
    const float* r0 = p.texture.data() + iy * n + ix;
    const float* r1 = r0 + n;
    return (1 - wy) * ((1 - wx) * r0[0] + wx * r0[1]) + wy * ((1 - wx) * r1[0] + wx * r1[1]);
  };

  Clip clip;
  clip.reserve(static_cast<size_t>(T));
  Generator noise(p.noise_seed);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t tf = p.cls.reverse ? T - 1 - t : t;  // the frame of the forward video shown now
    const float u = T > 1 ? static_cast<float>(tf) / static_cast<float>(T - 1) : 0.f;
    const float progress = std::pow(clamp01((u - p.start) / (p.end - p.start)), p.power);
    // This frame's global levels and the target's state.
    float gain = p.gain, cast = p.cast, zoom = 1, glow = 0;
    float radius = p.target.radius, step = 0;  // step: how far along its path the target is
    if (action == C::kIllumination) gain = p.gain * (1 + p.gain_drift * (2 * progress - 1));
    if (action == C::kColour) cast = p.cast + p.cast_drift * (2 * progress - 1);
    if (action == C::kZoom) zoom = 1 + p.zoom_drift * progress;
    if (action == C::kHorizontal || action == C::kVertical) step = progress;
    const float first = pulse(u, p.first_begin, p.first_end), last = pulse(u, p.last_begin, p.last_end);
    if (action == C::kFlashJump) glow = first, step = smooth((u - p.last_begin) / (p.last_end - p.last_begin));
    if (action == C::kFlashSwell) glow = first, radius *= 1 + static_cast<float>(k.swell) * last;
    if (action == C::kJumpSwell)
      step = smooth((u - p.first_begin) / (p.first_end - p.first_begin)), radius *= 1 + static_cast<float>(k.swell) * last;
    float tx = p.target.x0 + step * p.target.dx, ty = p.target.y0 + step * p.target.dy;
    if (action == C::kOrbit) {  // image y points down: a growing angle turns clockwise on screen
      const float angle = p.orbit_angle + progress * p.orbit_turn;
      tx = p.orbit_x + p.orbit_radius * std::cos(angle), ty = p.orbit_y + p.orbit_radius * std::sin(angle);
    }
    const float glow_sigma2 = 2 * std::pow(2.5f * p.target.radius, 2.f);
    const float bar = -p.occluder_width / 2 +
                      (u - p.occluder_begin) / (p.occluder_end - p.occluder_begin) * (s + p.occluder_width);
    const bool bar_on = p.occluder && u >= p.occluder_begin && u <= p.occluder_end;
    const float jx = static_cast<float>(p.jitter[static_cast<size_t>(tf)].first);
    const float jy = static_cast<float>(p.jitter[static_cast<size_t>(tf)].second);
    const float channel_gain[3] = {gain * (1 + cast), gain, gain * (1 - cast)};

    Image img(S, S, 3);
    for (int64_t y = 0; y < S; ++y) {
      for (int64_t x = 0; x < S; ++x) {
        // The scene point this pixel sees through the shaking, zooming camera.
        const float wx = p.zoom_x + (static_cast<float>(x) + 0.5f - p.zoom_x) / zoom + jx;
        const float wy = p.zoom_y + (static_cast<float>(y) + 0.5f - p.zoom_y) / zoom + jy;
        const float bg = texture(wx, wy);
        float v[3];
        for (int c = 0; c < 3; ++c) v[c] = p.base[c] + bg;
        auto paint = [&](const HardObject& o, float ox, float oy, float r) {
          const float dx = wx - ox, dy = wy - oy, reach = o.shape.reach(r);
          if (std::abs(dx) > reach || std::abs(dy) > reach) return;
          const float cover = o.shape.cover(dx, dy, r), lit = o.shape.shade(dx, dy);
          for (int c = 0; c < 3; ++c) v[c] = (1 - cover) * v[c] + cover * o.color[c] * lit;
        };
        // Distractors move along their paths with plain time (their own pace), the target with the action's.
        for (const HardObject& d : p.distractors) paint(d, d.x0 + u * d.dx, d.y0 + u * d.dy, d.radius);
        paint(p.target, tx, ty, radius);
        if (glow > 0) {
          const float r2 = (wx - tx) * (wx - tx) + (wy - ty) * (wy - ty);
          const float add = static_cast<float>(k.flash_glow) * glow * std::exp(-r2 / glow_sigma2);
          for (float& c : v) c += add;
        }
        if (bar_on) {
          const float across = p.occluder_vertical ? wx : wy;
          const float cover = clamp01(p.occluder_width / 2 - std::abs(across - bar) + 0.5f);
          for (int c = 0; c < 3; ++c) v[c] = (1 - cover) * v[c] + cover * p.occluder_color[c];
        }
        const float n = static_cast<float>(noise.normal() * 3.0);
        uint8_t* px = img.row(y) + x * 3;
        for (int c = 0; c < 3; ++c)
          px[c] = static_cast<uint8_t>(std::lround(std::clamp(channel_gain[c] * v[c] + n, 0.f, 255.f)));
      }
    }
    clip.push_back(std::move(img));
  }
  return clip;
}

inline Clip render_hard_video(const std::string& cls, int64_t S, int64_t T, Generator& g) {
  return render_hard_video(draw_hard_plan(cls, S, T, g));
}

// A complete video on disk: it decodes to the expected frame count and size.
inline bool synth_video_complete(const std::string& path, int64_t S, int64_t T) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  try {
    VideoReader r(path, 1);
    return r.frame_count() == T && r.width() == S && r.height() == S;
  } catch (const Error&) {
    return false;
  }
}

inline void write_text_file(const std::filesystem::path& path, const std::string& text) {
  io::detail::write_file_atomically(path.string(), "write_synth_dataset", [&](auto&& put) { put(text.data(), text.size()); });
}

// What the videos of a dataset directory are a function of, besides (class, split, index): a resumed run
// must match it, or it would keep videos of another seed, size or generator version next to new ones.
inline constexpr int kSynthGeneratorVersion = 2;  // 2: random outlines and textures, x264 without AVX-512
// The demo preset's manifest has no preset line (it is the text written before presets existed, so demo
// datasets made then still resume); another preset adds "preset NAME VERSION" after the first line.
inline std::string synth_manifest(const SynthOptions& o) {
  char buf[200];
  const std::string preset =
      o.preset == "demo" ? "" : "preset " + o.preset + " " + std::to_string(kSynthHardVersion) + "\n";
  std::snprintf(buf, sizeof(buf), "tinyvid synth generator %d\n%sseed %llu\nsize %lld\nframes %lld\nfps %.6g\n",
                kSynthGeneratorVersion, preset.c_str(), static_cast<unsigned long long>(o.seed),
                static_cast<long long>(o.size), static_cast<long long>(o.frames), o.fps);
  return buf;
}

// The preset a manifest names ("demo" when it has no preset line).
inline std::string synth_manifest_preset(const std::string& manifest) {
  const size_t at = manifest.find("\npreset ");
  if (at == std::string::npos) return "demo";
  const size_t begin = at + 8, end = manifest.find_first_of(" \n", begin);
  return manifest.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

inline std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

inline void check_synth_preset(const std::string& preset, const char* who) {
  const auto& presets = synth_presets();
  TV_CHECK(std::find(presets.begin(), presets.end(), preset) != presets.end(), who, ": unknown preset '", preset,
           "'; expected one of: ", join_names(presets));
}

// A hard video's seed also depends on the preset, so that no hard video repeats a demo one.
inline uint64_t synth_preset_video_seed(uint64_t seed, const std::string& preset, const std::string& cls, int split,
                                        int64_t index) {
  return synth_video_seed(seed, preset == "demo" ? cls : preset + "/" + cls, split, index);
}

inline Clip render_preset_video(const std::string& preset, const std::string& cls, int64_t S, int64_t T, Generator& g) {
  return preset == "demo" ? render_synth_video(cls, S, T, g) : render_hard_video(cls, S, T, g);
}

}  // namespace detail

using detail::SynthHardClass;
using detail::synth_hard_classes;

// The class names of a preset, in label order.
inline std::vector<std::string> synth_class_names(const std::string& preset) {
  detail::check_synth_preset(preset, "synth");
  if (preset == "demo") return synth_class_names();
  std::vector<std::string> names;
  for (const SynthHardClass& c : synth_hard_classes()) names.emplace_back(c.name);
  return names;
}

// Renders one video of a named class (for tests and demos); the same arguments give the same frames.
inline Clip synth_video(const std::string& cls, int64_t size, int64_t frames, uint64_t seed, int split = 0, int64_t index = 0) {
  const auto& names = synth_class_names();
  TV_CHECK(std::find(names.begin(), names.end(), cls) != names.end(), "synth_video: unknown class '", cls, "'");
  Generator g(detail::synth_video_seed(seed, cls, split, index));
  return detail::render_synth_video(cls, size, frames, g);
}

// The same for any preset: the frames write_synth_dataset encodes for (preset, class, split, index).
inline Clip synth_video(const std::string& preset, const std::string& cls, int64_t size, int64_t frames, uint64_t seed,
                        int split, int64_t index) {
  const auto names = synth_class_names(preset);
  TV_CHECK(std::find(names.begin(), names.end(), cls) != names.end(), "synth_video: unknown class '", cls,
           "' of preset '", preset, "'; its classes: ", detail::join_names(names));
  Generator g(detail::synth_preset_video_seed(seed, preset, cls, split, index));
  return detail::render_preset_video(preset, cls, size, frames, g);
}

inline SynthReport write_synth_dataset(const std::string& out_dir, const SynthOptions& o = {}) {
  namespace fs = std::filesystem;
  const auto t_start = std::chrono::steady_clock::now();
  detail::check_synth_preset(o.preset, "write_synth_dataset");
  const std::vector<std::string> all = synth_class_names(o.preset);
  const std::vector<std::string> classes = o.classes.empty() ? all : o.classes;
  for (const std::string& c : classes)
    TV_CHECK(std::find(all.begin(), all.end(), c) != all.end(), "write_synth_dataset: unknown class '", c,
             "'; known classes of preset '", o.preset, "': ", detail::join_names(all));
  for (size_t i = 0; i < classes.size(); ++i)
    TV_CHECK(std::find(classes.begin(), classes.begin() + static_cast<std::ptrdiff_t>(i), classes[i]) ==
                 classes.begin() + static_cast<std::ptrdiff_t>(i),
             "write_synth_dataset: class '", classes[i], "' is listed twice");
  TV_CHECK(o.size >= 16 && o.size % 2 == 0, "write_synth_dataset: expected an even size >= 16, got ", o.size);
  TV_CHECK(o.frames >= 2, "write_synth_dataset: expected at least 2 frames per video, got ", o.frames);
  TV_CHECK(o.train_per_class >= 0 && o.val_per_class >= 0 && o.train_per_class + o.val_per_class >= 1,
           "write_synth_dataset: expected at least one video per class, got ", o.train_per_class, " train and ",
           o.val_per_class, " val");
  TV_CHECK(o.fps > 0, "write_synth_dataset: expected fps > 0, got ", o.fps);

  struct Job {
    std::string cls, rel;  // rel: path under out_dir/videos
    int split;
    int64_t index, label;
  };
  std::vector<Job> jobs;
  std::string lists[2];
  for (size_t label = 0; label < classes.size(); ++label) {
    for (int split = 0; split < 2; ++split) {
      const int64_t n = split == 0 ? o.train_per_class : o.val_per_class;
      for (int64_t i = 0; i < n; ++i) {
        char name[64];
        std::snprintf(name, sizeof(name), "%s_%04lld.mp4", split == 0 ? "train" : "val", static_cast<long long>(i));
        Job j{classes[label], classes[label] + "/" + name, split, i, static_cast<int64_t>(label)};
        lists[split] += j.rel + " " + std::to_string(label) + "\n";
        jobs.push_back(std::move(j));
      }
    }
  }

  const fs::path root(out_dir), videos = root / "videos";
  std::error_code ec;
  // The manifest: a directory with videos made otherwise is refused, one without videos gets the manifest.
  const fs::path manifest_path = root / "synth_manifest.txt";
  const std::string manifest = detail::synth_manifest(o);
  if (fs::exists(manifest_path, ec)) {
    const std::vector<uint8_t> raw = io::detail::read_file(manifest_path.string(), "write_synth_dataset");
    const std::string old(raw.begin(), raw.end());
    const std::string old_preset = detail::synth_manifest_preset(old);
    TV_CHECK(old_preset == o.preset, "write_synth_dataset: '", out_dir, "' holds a dataset of preset '", old_preset,
             "', this run asks for preset '", o.preset, "': resume it with preset '", old_preset,
             "' (tinyvid synth --preset ", old_preset, "), remove it or write elsewhere");
    TV_CHECK(old == manifest, "write_synth_dataset: '", out_dir,
             "' holds a dataset made with other settings or by another generator (its synth_manifest.txt differs from ",
             "this run's: preset ", o.preset, ", seed ", o.seed, ", size ", o.size, ", frames ", o.frames, ", fps ", o.fps,
             ", generator ", detail::kSynthGeneratorVersion, "); remove it or write elsewhere");
  } else {
    bool has_videos = false;
    if (fs::is_directory(videos, ec))
      for (const auto& e : fs::recursive_directory_iterator(videos, ec)) has_videos = has_videos || e.is_regular_file();
    TV_CHECK(!has_videos, "write_synth_dataset: '", out_dir, "' holds videos but no synth_manifest.txt (made by an ",
             "older tinyvid?): remove it or write elsewhere");
    fs::create_directories(root, ec);
    TV_CHECK(!ec, "write_synth_dataset: cannot create '", out_dir, "': ", ec.message());
    detail::write_text_file(manifest_path, manifest);
  }
  for (const std::string& c : classes) {
    fs::create_directories(videos / c, ec);
    TV_CHECK(!ec, "write_synth_dataset: cannot create '", (videos / c).string(), "': ", ec.message());
  }

  SynthReport report;
  std::atomic<size_t> next{0};
  std::atomic<int64_t> written{0}, skipped{0};
  std::mutex mu;  // guards first_error and the progress line
  std::exception_ptr first_error;
  ProgressLine progress("synth", static_cast<int64_t>(jobs.size()), "videos", o.progress && stderr_is_terminal());
  auto count = [&](bool was_complete) {
    std::lock_guard<std::mutex> lock(mu);
    const std::string extra = std::to_string(skipped.load()) + " complete already";
    was_complete ? progress.skip(1, extra) : progress.advance(1, extra);
  };
  auto worker = [&] {
    for (;;) {
      const size_t k = next.fetch_add(1);
      if (k >= jobs.size()) return;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error) return;
      }
      try {
        const Job& j = jobs[k];
        const fs::path path = videos / j.rel;
        const bool complete = detail::synth_video_complete(path.string(), o.size, o.frames);
        if (complete) {
          ++skipped;
        } else {
          // Written under a temporary name and renamed: an interrupted run never leaves a half file that
          // looks finished.
          const fs::path tmp = path.string() + ".part";
          Generator g(detail::synth_preset_video_seed(o.seed, o.preset, j.cls, j.split, j.index));
          const Clip clip = detail::render_preset_video(o.preset, j.cls, o.size, o.frames, g);
          {
            VideoWriter w(tmp.string(), o.size, o.size, o.fps);
            for (const Image& f : clip) w.write(f);
            w.close();
          }
          std::error_code rec;
          fs::rename(tmp, path, rec);
          TV_CHECK(!rec, "write_synth_dataset: cannot rename '", tmp.string(), "' to '", path.string(), "': ", rec.message());
          ++written;
        }
        count(complete);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!first_error) first_error = std::current_exception();
        return;
      }
    }
  };
  const int n_threads = std::max(1, std::min<int>(o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency()),
                                                  static_cast<int>(std::max<size_t>(1, jobs.size()))));
  std::vector<std::thread> pool;
  for (int i = 1; i < n_threads; ++i) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  if (first_error) std::rethrow_exception(first_error);
  if (o.progress) progress.finish();

  // The lists last: a directory with lists is a finished dataset.
  std::string names;
  for (const std::string& c : classes) names += c + "\n";
  detail::write_text_file(root / "classes.txt", names);
  detail::write_text_file(root / "train_list.txt", lists[0]);
  detail::write_text_file(root / "val_list.txt", lists[1]);

  report.written = written.load();
  report.skipped = skipped.load();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return report;
}

}  // namespace tv::data
