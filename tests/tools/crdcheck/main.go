// Command crdcheck runs the apiserver's own CRD and custom-resource validation in one process.
//
// Why: a real control plane takes minutes to start; this binary links the same
// k8s.io/apiextensions-apiserver code (CRD validation with the CEL cost estimator,
// pruning, defaulting, OpenAPI schema and CEL rule evaluation) and answers in milliseconds,
// so the unit tests can assert the exact refusal sentences a user would read from kubectl.
//
// Usage: crdcheck CRD.yaml < objects.json
// stdin holds a JSON array of objects; stdout gets
// {"crd": [errors], "objects": [{"errors": [...], "row": [...]}, ...]}: each error as the apiserver
// prints it, and for a valid object the cells `kubectl get` shows (printer columns).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/install"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apiextensions-apiserver/pkg/registry/customresource"
	"k8s.io/apiextensions-apiserver/pkg/registry/customresource/tableconvertor"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	kjson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/yaml"
)

type report struct {
	CRD     []string  `json:"crd"`
	Objects []outcome `json:"objects"`
}

type outcome struct {
	Errors []string      `json:"errors"`
	Row    []interface{} `json:"row"`
}

func messages(errs field.ErrorList) []string {
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "crdcheck:", err)
		os.Exit(2)
	}
}

func run() error {
	if len(os.Args) != 2 {
		return fmt.Errorf("usage: crdcheck CRD.yaml < objects.json")
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	install.Install(scheme)
	// Decoding into the internal type applies v1 defaulting and conversion, as the apiserver does.
	crd := &apiextensions.CustomResourceDefinition{}
	decoder := serializer.NewCodecFactory(scheme).UniversalDecoder(apiextensions.SchemeGroupVersion)
	if _, _, err := decoder.Decode(raw, nil, crd); err != nil {
		return fmt.Errorf("decoding %s: %w", os.Args[1], err)
	}
	ctx := genericapirequest.NewContext()
	rep := report{CRD: messages(crdvalidation.ValidateCustomResourceDefinition(ctx, crd)), Objects: []outcome{}}
	crdV1 := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(raw, crdV1); err != nil {
		return err
	}

	var objects []map[string]interface{}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	// Decode numbers as the apiserver does: integers become int64, not float64.
	if err := kjson.Unmarshal(input, &objects); err != nil {
		return fmt.Errorf("stdin must be a JSON array of objects: %w", err)
	}
	if len(rep.CRD) == 0 && len(objects) > 0 {
		table, err := tableconvertor.New(crdV1.Spec.Versions[0].AdditionalPrinterColumns)
		if err != nil {
			return fmt.Errorf("printer columns: %w", err)
		}
		if rep.Objects, err = validateObjects(ctx, crd, table, objects); err != nil {
			return err
		}
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}

func validateObjects(ctx context.Context, crd *apiextensions.CustomResourceDefinition, table rest.TableConvertor,
	objects []map[string]interface{}) ([]outcome, error) {
	version := crd.Spec.Versions[0]
	validation, err := apiextensions.GetSchemaForVersion(crd, version.Name)
	if err != nil {
		return nil, err
	}
	props := validation.OpenAPIV3Schema
	structural, err := structuralschema.NewStructural(props)
	if err != nil {
		return nil, err
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(props)
	if err != nil {
		return nil, err
	}
	kind := schema.GroupVersionKind{Group: crd.Spec.Group, Version: version.Name, Kind: crd.Spec.Names.Kind}
	strategy := customresource.NewStrategy(nil, crd.Spec.Scope == apiextensions.NamespaceScoped, kind,
		validator, nil, structural, nil, nil, nil)
	out := make([]outcome, 0, len(objects))
	for _, obj := range objects {
		// The apiserver prunes unknown fields and applies defaults before it validates.
		structuralpruning.Prune(obj, structural, true)
		structuraldefaulting.Default(obj, structural)
		u := &unstructured.Unstructured{Object: obj}
		result := outcome{Errors: messages(strategy.Validate(ctx, u)), Row: []interface{}{}}
		if len(result.Errors) == 0 {
			rendered, err := table.ConvertToTable(ctx, u, nil)
			if err != nil {
				return nil, fmt.Errorf("printing %s: %w", u.GetName(), err)
			}
			result.Row = rendered.Rows[0].Cells
		}
		out = append(out, result)
	}
	return out, nil
}
