package daemon

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/keyd-io/keyd/config"
)

// NewLogger builds the logger described by cfg. Its level can be changed later through
// the returned AtomicLevel (on reload).
func NewLogger(cfg config.Log) (*zap.Logger, zap.AtomicLevel, error) {
	level, err := zap.ParseAtomicLevel(cfg.Level)
	if err != nil {
		return nil, level, fmt.Errorf("log.level: %w", err)
	}
	var zc zap.Config
	if cfg.Format == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.DisableStacktrace = true
	} else {
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.TimeKey = "time"
		zc.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		zc.Sampling = nil
		// An operator's log line says what failed and why; a Go stack adds nothing.
		zc.DisableStacktrace = true
	}
	zc.Level = level
	zc.OutputPaths = []string{"stderr"}
	zc.ErrorOutputPaths = []string{"stderr"}
	log, err := zc.Build()
	if err != nil {
		return nil, level, fmt.Errorf("build logger: %w", err)
	}
	return log, level, nil
}
