//! Tesseract through its C API (`capi.h`), loaded at run time.
//!
//! Why dlopen and hand-written declarations rather than a binding crate: the
//! maintained `tesseract-sys` generates its bindings with bindgen, which needs
//! libclang at build time, and links the library, so Enclave would not build
//! or start on a machine without Tesseract. We use 23 functions of a stable C
//! API; declaring them here keeps the build free of both, and lets a server
//! without `libtesseract5` run everything but OCR (reported by `enclave doctor`).
//!
//! Everything here runs in the extraction worker. The library and the
//! language model files are loaded *before* the worker confines itself
//! (Landlock then forbids opening files); recognition afterwards opens
//! nothing. With one language the model is parsed only when a page first
//! needs OCR (`TessBaseAPIInit5`, from the bytes read earlier), so a text
//! PDF does not pay the 60 ms and 30 MB of parsing it; several languages are
//! parsed at once, from the model directory, while files may still be read.

use std::ffi::{CStr, CString, c_char, c_float, c_int, c_void};
use std::path::{Path, PathBuf};
use std::time::Duration;

use libloading::Library;

use super::GrayImage;

/// The shared objects tried, newest first (Debian 12 ships 5.3 as `.so.5`).
const LIBRARY_NAMES: &[&str] = &["libtesseract.so.5", "libtesseract.so"];

/// Where distributions put the language models, tried in order after
/// `TESSDATA_PREFIX`.
const TESSDATA_DIRS: &[&str] = &[
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
];

// Page iterator levels (tesseract/publictypes.h, PageIteratorLevel).
pub const LEVEL_BLOCK: c_int = 0;
pub const LEVEL_PARAGRAPH: c_int = 1;
pub const LEVEL_LINE: c_int = 2;
pub const LEVEL_WORD: c_int = 3;
/// OEM_LSTM_ONLY: the neural recogniser, the only one the Debian models carry.
const ENGINE_LSTM: c_int = 1;
/// PSM_AUTO: full layout analysis without orientation detection. The
/// library's default (6, one uniform block) loses columns and headers.
const SEGMENT_AUTO: c_int = 3;

type Handle = *mut c_void;

/// The C functions we call, resolved once from the loaded library.
struct Functions {
    version: unsafe extern "C-unwind" fn() -> *const c_char,
    create: unsafe extern "C-unwind" fn() -> Handle,
    delete: unsafe extern "C-unwind" fn(Handle),
    end: unsafe extern "C-unwind" fn(Handle),
    #[allow(clippy::type_complexity)]
    init5: unsafe extern "C-unwind" fn(
        Handle,
        *const c_char,
        c_int,
        *const c_char,
        c_int,
        *mut *mut c_char,
        c_int,
        *mut *mut c_char,
        *mut *mut c_char,
        usize,
        c_int,
    ) -> c_int,
    #[allow(clippy::type_complexity)]
    init4: unsafe extern "C-unwind" fn(
        Handle,
        *const c_char,
        *const c_char,
        c_int,
        *mut *mut c_char,
        c_int,
        *mut *mut c_char,
        *mut *mut c_char,
        usize,
        c_int,
    ) -> c_int,
    set_page_seg_mode: unsafe extern "C-unwind" fn(Handle, c_int),
    set_image: unsafe extern "C-unwind" fn(Handle, *const u8, c_int, c_int, c_int, c_int),
    set_source_resolution: unsafe extern "C-unwind" fn(Handle, c_int),
    recognize: unsafe extern "C-unwind" fn(Handle, *mut c_void) -> c_int,
    clear: unsafe extern "C-unwind" fn(Handle),
    get_iterator: unsafe extern "C-unwind" fn(Handle) -> *mut c_void,
    result_iterator_delete: unsafe extern "C-unwind" fn(*mut c_void),
    result_iterator_page_iterator: unsafe extern "C-unwind" fn(*mut c_void) -> *mut c_void,
    result_iterator_text: unsafe extern "C-unwind" fn(*const c_void, c_int) -> *mut c_char,
    result_iterator_confidence: unsafe extern "C-unwind" fn(*const c_void, c_int) -> c_float,
    page_iterator_next: unsafe extern "C-unwind" fn(*mut c_void, c_int) -> c_int,
    page_iterator_is_at_beginning_of: unsafe extern "C-unwind" fn(*const c_void, c_int) -> c_int,
    page_iterator_bounding_box: unsafe extern "C-unwind" fn(
        *const c_void,
        c_int,
        *mut c_int,
        *mut c_int,
        *mut c_int,
        *mut c_int,
    ) -> c_int,
    delete_text: unsafe extern "C-unwind" fn(*const c_char),
    monitor_create: unsafe extern "C-unwind" fn() -> *mut c_void,
    monitor_delete: unsafe extern "C-unwind" fn(*mut c_void),
    monitor_set_deadline: unsafe extern "C-unwind" fn(*mut c_void, c_int),
}

/// One recognised word, in reading order, with where it begins.
#[derive(Debug, Clone, PartialEq)]
pub struct RawWord {
    pub text: String,
    /// left, top, right, bottom in image pixels.
    pub bbox: [u32; 4],
    /// 0–100, as Tesseract reports it.
    pub confidence: f32,
    /// The word opens a new block or paragraph / a new line.
    pub starts_paragraph: bool,
    pub starts_line: bool,
}

/// A loaded and initialised Tesseract instance.
pub struct Tesseract {
    functions: Functions,
    /// Null until the model is parsed ([`Tesseract::initialise`]).
    handle: Handle,
    /// The one language's model file, read before confinement, parsed on
    /// first use; `None` once parsed.
    pending_model: Option<(CString, Vec<u8>)>,
    version: String,
    // Last: the functions point into it, so it must outlive every call.
    _library: Library,
}

/// Where the language models are: `TESSDATA_PREFIX` (as Tesseract itself
/// reads it) or the first distribution directory that exists.
pub fn tessdata_dir(configured: &Path) -> Option<PathBuf> {
    if !configured.as_os_str().is_empty() {
        return Some(configured.to_path_buf());
    }
    if let Some(prefix) = std::env::var_os("TESSDATA_PREFIX") {
        return Some(PathBuf::from(prefix));
    }
    TESSDATA_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|dir| dir.is_dir())
}

/// The language models installed in `dir` (`eng`, `fra`, … without `osd`,
/// which only detects orientation).
pub fn installed_languages(dir: &Path) -> Vec<String> {
    let mut languages: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".traineddata").map(str::to_string)
        })
        .filter(|lang| lang != "osd")
        .collect();
    languages.sort();
    languages
}

/// Load the library, if it is installed (no model is read).
fn open_library() -> Result<Library, String> {
    let mut last = String::new();
    for name in LIBRARY_NAMES {
        // SAFETY: loading libtesseract runs its (and its dependencies')
        // initialisers, which only set up static tables.
        match unsafe { Library::new(name) } {
            Ok(library) => return Ok(library),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!(
        "the Tesseract library is not installed (Debian: apt install libtesseract5 tesseract-ocr-eng): {last}"
    ))
}

/// The installed library's version, or why there is none.
pub fn library_version() -> Result<String, String> {
    let library = open_library()?;
    // SAFETY: TessVersion takes nothing and returns a static C string.
    unsafe {
        let version: libloading::Symbol<unsafe extern "C-unwind" fn() -> *const c_char> =
            library.get(b"TessVersion\0").map_err(|e| e.to_string())?;
        Ok(CStr::from_ptr(version()).to_string_lossy().into_owned())
    }
}

macro_rules! symbol {
    ($library:expr, $name:literal) => {
        // SAFETY: the declared type matches the prototype in tesseract/capi.h
        // (5.x); the pointer is used only while `_library` is loaded.
        *unsafe { $library.get(concat!($name, "\0").as_bytes()) }
            .map_err(|e| format!("the Tesseract library lacks {}: {e}", $name))?
    };
}

impl Tesseract {
    /// Load the library and the models of `languages` from `tessdata`.
    pub fn load(tessdata: &Path, languages: &[String]) -> Result<Tesseract, String> {
        for lang in languages {
            if !tessdata.join(format!("{lang}.traineddata")).is_file() {
                return Err(format!(
                    "OCR language '{lang}' is not installed in {} (Debian: apt install tesseract-ocr-{lang})",
                    tessdata.display()
                ));
            }
        }
        let library = open_library()?;
        let functions = Functions {
            version: symbol!(library, "TessVersion"),
            create: symbol!(library, "TessBaseAPICreate"),
            delete: symbol!(library, "TessBaseAPIDelete"),
            end: symbol!(library, "TessBaseAPIEnd"),
            init4: symbol!(library, "TessBaseAPIInit4"),
            init5: symbol!(library, "TessBaseAPIInit5"),
            set_page_seg_mode: symbol!(library, "TessBaseAPISetPageSegMode"),
            set_image: symbol!(library, "TessBaseAPISetImage"),
            set_source_resolution: symbol!(library, "TessBaseAPISetSourceResolution"),
            recognize: symbol!(library, "TessBaseAPIRecognize"),
            clear: symbol!(library, "TessBaseAPIClear"),
            get_iterator: symbol!(library, "TessBaseAPIGetIterator"),
            result_iterator_delete: symbol!(library, "TessResultIteratorDelete"),
            result_iterator_page_iterator: symbol!(library, "TessResultIteratorGetPageIterator"),
            result_iterator_text: symbol!(library, "TessResultIteratorGetUTF8Text"),
            result_iterator_confidence: symbol!(library, "TessResultIteratorConfidence"),
            page_iterator_next: symbol!(library, "TessPageIteratorNext"),
            page_iterator_is_at_beginning_of: symbol!(library, "TessPageIteratorIsAtBeginningOf"),
            page_iterator_bounding_box: symbol!(library, "TessPageIteratorBoundingBox"),
            delete_text: symbol!(library, "TessDeleteText"),
            monitor_create: symbol!(library, "TessMonitorCreate"),
            monitor_delete: symbol!(library, "TessMonitorDelete"),
            monitor_set_deadline: symbol!(library, "TessMonitorSetDeadlineMSecs"),
        };
        // SAFETY: TessVersion takes nothing and returns a static C string.
        let version = unsafe { CStr::from_ptr((functions.version)()) }
            .to_string_lossy()
            .into_owned();
        // The declarations here are 5.x's (the unversioned name may be another).
        if !version.starts_with("5.") {
            return Err(format!("Tesseract {version} is installed; OCR needs 5.x"));
        }
        let mut tesseract = Tesseract {
            functions,
            handle: std::ptr::null_mut(),
            pending_model: None,
            version,
            _library: library,
        };
        if let [language] = languages {
            let path = tessdata.join(format!("{language}.traineddata"));
            let bytes =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            tesseract.pending_model = Some((c_string(language)?, bytes));
        } else {
            tesseract.init_from_dir(tessdata, &languages.join("+"))?;
        }
        Ok(tesseract)
    }

    /// Parse the models of `languages` ("eng+fra") from the directory.
    fn init_from_dir(&mut self, tessdata: &Path, languages: &str) -> Result<(), String> {
        let datapath = c_string(&tessdata.to_string_lossy())?;
        let language = c_string(languages)?;
        let handle = self.create()?;
        // SAFETY: prototype from capi.h; every pointer is valid for the call.
        let status = unsafe {
            (self.functions.init4)(
                handle,
                datapath.as_ptr(),
                language.as_ptr(),
                ENGINE_LSTM,
                std::ptr::null_mut(),
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
                0,
            )
        };
        self.finish_init(handle, status, languages)
    }

    /// Parse the pending model from memory, the first time a page needs it.
    fn initialise(&mut self) -> Result<(), String> {
        let Some((language, model)) = self.pending_model.take() else {
            return Ok(());
        };
        let size = c_int::try_from(model.len()).map_err(|_| "model file too large".to_string())?;
        let handle = self.create()?;
        // SAFETY: prototype from capi.h; the model bytes and the language
        // string outlive the call (Tesseract copies what it keeps).
        let status = unsafe {
            (self.functions.init5)(
                handle,
                model.as_ptr().cast(),
                size,
                language.as_ptr(),
                ENGINE_LSTM,
                std::ptr::null_mut(),
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
                0,
            )
        };
        self.finish_init(handle, status, &language.to_string_lossy())
    }

    fn create(&self) -> Result<Handle, String> {
        // SAFETY: TessBaseAPICreate takes nothing.
        let handle = unsafe { (self.functions.create)() };
        if handle.is_null() {
            return Err("Tesseract could not be created".into());
        }
        Ok(handle)
    }

    fn finish_init(
        &mut self,
        handle: Handle,
        status: c_int,
        languages: &str,
    ) -> Result<(), String> {
        // SAFETY: `handle` came from TessBaseAPICreate and is not used elsewhere.
        unsafe {
            if status != 0 {
                (self.functions.delete)(handle);
                return Err(format!("Tesseract could not load the '{languages}' models"));
            }
            (self.functions.set_page_seg_mode)(handle, SEGMENT_AUTO);
        }
        self.handle = handle;
        Ok(())
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Recognise one grayscale page; words in reading order. Recognition
    /// stops at `deadline` (layout analysis before it is not interruptible;
    /// the worker's parent still kills the whole process at its deadline).
    pub fn recognise(
        &mut self,
        image: &GrayImage,
        deadline: Duration,
    ) -> Result<Vec<RawWord>, String> {
        // SetImage reads width × height bytes.
        if image.pixels.len() != image.width as usize * image.height as usize {
            return Ok(Vec::new());
        }
        self.initialise()?;
        let f = &self.functions;
        let mut words = Vec::new();
        // SAFETY: the image buffer outlives Recognize (SetImage copies it
        // anyway); the iterator is used only before Clear and deleted once;
        // the page iterator is a view of the result iterator, not an object
        // of its own (capi.cpp), so it is never deleted separately.
        unsafe {
            (f.set_image)(
                self.handle,
                image.pixels.as_ptr(),
                image.width as c_int,
                image.height as c_int,
                1,
                image.width as c_int,
            );
            (f.set_source_resolution)(self.handle, image.dpi as c_int);
            let monitor = (f.monitor_create)();
            if !monitor.is_null() {
                let ms = deadline.as_millis().min(c_int::MAX as u128) as c_int;
                (f.monitor_set_deadline)(monitor, ms);
            }
            (f.recognize)(self.handle, monitor);
            if !monitor.is_null() {
                (f.monitor_delete)(monitor);
            }
            let results = (f.get_iterator)(self.handle);
            if !results.is_null() {
                let page = (f.result_iterator_page_iterator)(results);
                loop {
                    if let Some(word) = self.word_at(results, page) {
                        words.push(word);
                    }
                    if (f.page_iterator_next)(page, LEVEL_WORD) == 0 {
                        break;
                    }
                }
                (f.result_iterator_delete)(results);
            }
            (f.clear)(self.handle);
        }
        Ok(words)
    }

    /// The word the iterator is on, if it has text.
    ///
    /// # Safety
    /// `results` is a live result iterator and `page` its page-iterator view.
    unsafe fn word_at(&self, results: *mut c_void, page: *mut c_void) -> Option<RawWord> {
        let f = &self.functions;
        // SAFETY: per the function's contract.
        unsafe {
            let raw = (f.result_iterator_text)(results, LEVEL_WORD);
            if raw.is_null() {
                return None;
            }
            let text = CStr::from_ptr(raw).to_string_lossy().into_owned();
            (f.delete_text)(raw);
            let (mut left, mut top, mut right, mut bottom) = (0, 0, 0, 0);
            (f.page_iterator_bounding_box)(
                page,
                LEVEL_WORD,
                &mut left,
                &mut top,
                &mut right,
                &mut bottom,
            );
            let at = |level| (f.page_iterator_is_at_beginning_of)(page, level) != 0;
            Some(RawWord {
                text,
                bbox: [left, top, right, bottom].map(|v| v.max(0) as u32),
                confidence: (f.result_iterator_confidence)(results, LEVEL_WORD).clamp(0.0, 100.0),
                starts_paragraph: at(LEVEL_BLOCK) || at(LEVEL_PARAGRAPH),
                starts_line: at(LEVEL_LINE),
            })
        }
    }
}

impl Drop for Tesseract {
    fn drop(&mut self) {
        if self.handle.is_null() {
            return;
        }
        // SAFETY: the handle came from TessBaseAPICreate and is dropped once.
        unsafe {
            (self.functions.end)(self.handle);
            (self.functions.delete)(self.handle);
        }
    }
}

fn c_string(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("NUL byte in {s:?}"))
}
