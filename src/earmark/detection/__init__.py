"""Sound event detection: timestamped events from frame scores, on files of any length."""

# Public names load on first use (lazy_loader, as librosa does): importing the package
# stays cheap, and every name below is importable from here.
import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=['mil', 'batch', 'boundaries', 'combined', 'detector', 'envelope', 'events', 'frame_calibration',
                'metrics', 'page', 'plots', 'postprocessing', 'scoring', 'soundscapes', 'stream'],
    submod_attrs={
        "mil": ['MILClassifier', 'POOLINGS'],
        "batch": ['DetectTask', 'FileDetection', 'detect_files', 'detect_task', 'output_names'],
        "combined": ['COMBINED_FILES', 'event_files', 'write_combined'],
        "detector": ['DETECTOR_DEFAULTS', 'WeakItems', 'train_detector', 'weak_items', 'detector_frames'],
        "postprocessing": ['check_postprocessing', 'resolve_postprocessing', 'tune_postprocessing'],
        "scoring": ['evaluate_events', 'threshold_curves', 'plot_threshold_curves'],
        "envelope": ['Envelope'],
        "boundaries": ['LevelTrack', 'refine_boundaries', 'LEVEL_BIN_S'],
        "frame_calibration": ['apply_frame_calibration', 'check_frame_calibration', 'fit_frame_calibration'],
        "events": ['Event', 'FORMATS', 'frames_to_events', 'window_cells', 'write_events', 'read_events', 'resolve_thresholds'],
        "metrics": ['ClassScores', 'DetectionScores', 'PSDSResult', 'event_based_scores', 'segment_based_scores', 'psds'],
        "page": ['detection_page', 'write_detection_page'],
        "plots": ['lane_colours', 'plot_detections'],
        "soundscapes": ['SoundscapeSet', 'make_soundscapes', 'standard_soundscapes', 'load_soundscapes'],
        "stream": ['FrameScorer', 'SlidingWindows', 'DetectionResult', 'detect_file'],
    },
)
